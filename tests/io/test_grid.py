"""The one same-grid check: size, CRS and pixel corners within GRID_TOLERANCE of a pixel; grid maths."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from geoseg.io.grid import GRID_TOLERANCE, grid_bounds, overlaps_grid, rescaled_transform, same_grid
from geoseg.io.rasters import inspect_scene

#: 0.5 m pixels of UTM 33N, top-left corner at (500000, 4000000).
TRANSFORM = from_origin(500000.0, 4000000.0, 0.5, 0.5)


class G:
    """A bare grid: size, transform and CRS."""

    def __init__(self, width=200, height=100, transform=TRANSFORM, crs="EPSG:32633"):
        self.width, self.height, self.transform = width, height, transform
        self.crs = None if crs is None else rasterio.crs.CRS.from_user_input(crs)


def test_identical_grids_and_every_kind_of_grid_object(make_raster):
    path = make_raster("s.tif", np.zeros((100, 200), np.uint8))
    info = inspect_scene(path)
    with rasterio.open(path) as ds:
        assert same_grid(ds, info) and same_grid(info, ds) and same_grid(info, G()) and same_grid(G(), info)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (G(width=201), False),
        (G(height=99), False),
        (G(crs="EPSG:32634"), False),
        (G(crs=None), False),
        # Shifts below the tolerance (a fraction of the 0.5 m pixel) are the same grid, above are not.
        (G(transform=Affine.translation(0.4 * GRID_TOLERANCE * 0.5, 0) * G().transform), True),
        (G(transform=Affine.translation(0, -2 * GRID_TOLERANCE * 0.5) * G().transform), False),
        (G(transform=from_origin(500000.0 + 3, 4000000.0, 0.5, 0.5)), False),
    ],
)
def test_size_crs_and_shift(other, same):
    assert same_grid(G(), other) is same
    assert same_grid(other, G()) is same


def test_a_tiny_pixel_size_difference_counts_where_it_adds_up():
    # 1e-5 of a pixel per pixel: at the origin nothing, at the far corner of 200 px 2e-3 px, over the tolerance.
    drift = G(transform=from_origin(500000.0, 4000000.0, 0.5 * (1 + 1e-5), 0.5))
    assert not same_grid(G(), drift)
    assert same_grid(G(width=20, transform=drift.transform), G(width=20))  # 2e-4 px at 20 px: the same


@settings(max_examples=50, deadline=None)
@given(dx=st.floats(-3, 3), dy=st.floats(-3, 3))
def test_same_grid_is_a_bound_on_corner_distance_in_pixels(dx, dy):
    shifted = G(transform=Affine.translation(dx * 0.5, dy * 0.5) * G().transform)
    distance = float(np.hypot(dx, dy))
    if distance <= 0.99 * GRID_TOLERANCE:
        assert same_grid(G(), shifted)
    elif distance >= 1.01 * GRID_TOLERANCE:
        assert not same_grid(G(), shifted)


def test_bounds_overlap_and_rescaled_transform():
    g = G()
    assert grid_bounds(g) == pytest.approx((500000.0, 3999950.0, 500100.0, 4000000.0))
    assert overlaps_grid((500099.0, 3999900.0, 500200.0, 3999951.0), g)
    assert not overlaps_grid((500100.0, 3999900.0, 500200.0, 4000000.0), g)  # touching is not overlapping
    t = rescaled_transform(g, 10, 20)
    assert (t.a, t.e, t.c, t.f) == pytest.approx((5.0, -5.0, 500000.0, 4000000.0))
