"""Vectorisation: a class raster into polygons per class, block by block, merged across seams.

``api`` (:func:`geoseg.vectorize`), ``tasks`` (on Dask workers), ``seams``, ``finish``, ``regularize``, ``write``.
"""
