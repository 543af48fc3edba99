"""Tiny synthetic rasters with a real CRS, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_raster(path: Path, array: np.ndarray, *, crs="EPSG:32633", transform=None, nodata=None, **profile) -> Path:
    """Write a (bands, h, w) or (h, w) array as a GeoTIFF with a real CRS."""
    import rasterio
    from rasterio.transform import from_origin

    if array.ndim == 2:
        array = array[None]
    if transform is None:
        transform = from_origin(500000.0, 4000000.0, 0.5, 0.5)
    with rasterio.open(
        path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
        dtype=array.dtype, crs=crs, transform=transform, nodata=nodata, **profile,
    ) as ds:
        ds.write(array)
    return path
