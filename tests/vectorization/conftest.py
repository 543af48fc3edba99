"""Shared fixtures of the vectorize tests: an in-process Dask client and a small class raster."""

from __future__ import annotations

import numpy as np
import pytest
from support.vector_cases import class_raster


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        yield c


@pytest.fixture
def good_raster(tmp_path):
    a = np.zeros((8, 8), dtype=np.uint8)
    a[1:7, 1:7] = 1  # 9 m²
    return class_raster(tmp_path / "good.tif", a)
