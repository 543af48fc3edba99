"""The only code that opens input rasters and vector files: windowed raster reading, vector labels, resampling."""
