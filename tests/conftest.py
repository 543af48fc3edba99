"""Shared fixtures: the real sample data, tiny synthetic rasters with a real CRS, stand-in networks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from support.rasters import write_raster

DATA = Path(os.environ.get("GEOSEG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        raise RuntimeError(f"sample data not found at {DATA}; set GEOSEG_SHARED_DATA to the shared/data folder")
    return DATA


@pytest.fixture
def make_raster(tmp_path):
    def make(name: str, array: np.ndarray, **kwargs) -> Path:
        return write_raster(tmp_path / name, array, **kwargs)

    return make
