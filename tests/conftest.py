"""Shared fixtures: the real sample data, tiny synthetic rasters with a real CRS, stand-in networks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("GEOSEG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        raise RuntimeError(f"sample data not found at {DATA}; set GEOSEG_SHARED_DATA to the shared/data folder")
    return DATA


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


@pytest.fixture
def make_raster(tmp_path):
    def make(name: str, array: np.ndarray, **kwargs) -> Path:
        return write_raster(tmp_path / name, array, **kwargs)

    return make
