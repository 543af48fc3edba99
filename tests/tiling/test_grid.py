"""Tiling and blend-weight maths: pure, property-tested (stitching: tests/prediction/test_stitch.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.prediction.blend import tile_weights
from geoseg.tiling import PixelWindow, axis_tiles, tile_grid


@st.composite
def grids(draw):
    tile = draw(st.integers(8, 96))
    overlap = draw(st.integers(0, tile - 1))
    length = draw(st.integers(1, 4 * tile))
    return length, tile, overlap


@given(grids())
@settings(max_examples=300, deadline=None)
def test_axis_cores_partition_and_halo(params):
    length, tile, overlap = params
    parts = axis_tiles(length, tile, overlap)
    assert parts[0][1] == 0 and parts[-1][2] == length
    for (s, c0, c1), nxt in zip(parts, parts[1:] + [None], strict=True):
        assert c0 < c1
        assert s <= c0 and c1 <= s + tile  # core inside the read window
        if nxt is not None:
            assert nxt[1] == c1  # cores are contiguous
        if length >= tile:
            assert 0 <= s and s + tile <= length  # reads stay inside the scene
            if c0 > 0:
                assert c0 - s >= overlap // 2  # halo before an interior core boundary
            if c1 < length:
                assert s + tile - c1 >= overlap // 2  # halo after
    assert len({s for s, _, _ in parts}) == len(parts)


def test_axis_rejects_bad_overlap():
    with pytest.raises(ValueError):
        axis_tiles(100, 16, 16)


@given(grids(), st.integers(1, 80))
@settings(max_examples=100, deadline=None)
def test_grid_cores_cover_every_pixel_once(params, width):
    height, tile, overlap = params
    cover = np.zeros((height, width), dtype=int)
    for t in tile_grid(height, width, tile, overlap):
        assert t.read.height == tile and t.read.width == tile
        rows, cols = t.core.relative_to(PixelWindow(0, 0, height, width))
        cover[rows, cols] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("mode", ["hann", "crop"])
def test_weights_zero_outside_scene_and_positive_inside(mode):
    tiles = tile_grid(50, 30, 32, 8)
    total = np.zeros((50, 30))
    for t in tiles:
        w = tile_weights(t, 50, 30, mode)
        assert w.shape == (32, 32)
        inside = t.read.intersection(PixelWindow(0, 0, 50, 30))
        rows, cols = inside.relative_to(t.read)
        outside = np.ones_like(w, dtype=bool)
        outside[rows, cols] = False
        assert (w[outside] == 0).all()
        total[inside.relative_to(PixelWindow(0, 0, 50, 30))] += w[rows, cols]
    assert (total > 0).all()
