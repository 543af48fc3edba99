"""The only code that opens inputs; it imports the foundation alone (and :mod:`geoseg.safety`).

- :mod:`~geoseg.io.rasters`: opening GeoTIFFs safely, :func:`~geoseg.io.rasters.inspect_scene`, and the one
  window reader :func:`~geoseg.io.rasters.read_window` (masks per GDAL RFC 15, padding, dtypes);
- :mod:`~geoseg.io.grid`: the one same-grid check, :func:`~geoseg.io.grid.same_grid`, with one tolerance;
- :mod:`~geoseg.io.class_rasters`: the one class-raster inspection and class-id window reader;
- :mod:`~geoseg.io.vectors`: the one polygon loader (explicit reprojection, one ``make_valid`` policy);
- :mod:`~geoseg.io.resample`: cached copies of scenes at another ground resolution.
- :mod:`~geoseg.io.remote`: scenes read over HTTP (Cloud-Optimized GeoTIFFs by byte ranges).
"""
