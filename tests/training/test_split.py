"""Validation split by geography: held-out blocks, no training tile overlapping them, each block pixel scored once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.errors import ConfigError
from geoseg.tiling import tile_grid
from geoseg.training.splits import split_tiles, validation_blocks, validation_windows

layouts = st.fixed_dictionaries({
    "height": st.integers(40, 400),
    "width": st.integers(40, 400),
    "tile": st.sampled_from([16, 32, 48]),
    "stride_div": st.sampled_from([1, 2, 4]),
    "mode": st.sampled_from(["strips", "checkerboard"]),
    "fraction": st.floats(0.1, 0.6),
    "strips": st.integers(2, 8),
    "block": st.integers(16, 120),
    "seed": st.integers(0, 5),
    "scene": st.integers(0, 3),
})


def blocks_of(p):
    return validation_blocks(p["height"], p["width"], mode=p["mode"], fraction=p["fraction"], strips=p["strips"],
                             block_size=p["block"], seed=p["seed"], scene=p["scene"])


def coverage(shape, windows):
    grid = np.zeros(shape, dtype=np.int64)
    for w in windows:
        grid[w.row_off : w.row_end, w.col_off : w.col_end] += 1
    return grid


@settings(max_examples=150, deadline=None)
@given(layouts)
def test_no_training_tile_overlaps_a_validation_block(p):
    try:
        blocks = blocks_of(p)
    except ConfigError:
        return  # too small for this layout: a clear error, checked below
    shape = (p["height"], p["width"])
    held = coverage(shape, blocks)
    assert held.max() == 1, "validation blocks must not overlap each other"
    assert 0 < held.sum() < p["height"] * p["width"], "some, but not all, of the scene is held out"
    tile = p["tile"]
    grid = tile_grid(p["height"], p["width"], tile, tile - tile // p["stride_div"])
    windows = [(0, t.read) for t in grid]
    keep, dropped = split_tiles(windows, [blocks])
    assert len(keep) + dropped == len(windows)
    for i in keep:
        w = windows[i][1]
        r0, c0 = max(w.row_off, 0), max(w.col_off, 0)
        assert held[r0 : w.row_end, c0 : w.col_end].sum() == 0, f"training tile {w} overlaps a validation block"
    for i in set(range(len(windows))) - set(keep):
        w = windows[i][1]
        assert held[max(w.row_off, 0) : w.row_end, max(w.col_off, 0) : w.col_end].sum() > 0


@settings(max_examples=100, deadline=None)
@given(layouts)
def test_validation_windows_score_each_block_pixel_once(p):
    try:
        blocks = blocks_of(p)
    except ConfigError:
        return
    pairs = validation_windows(blocks, p["tile"])
    scored = coverage((p["height"], p["width"]), [s for _, s in pairs])
    held = coverage((p["height"], p["width"]), blocks)
    assert np.array_equal(scored, held)
    for read, s in pairs:
        assert read.height == read.width == p["tile"]
        assert read.intersection(s) == s


def test_strips_are_whole_columns_and_follow_the_seed():
    a = validation_blocks(100, 500, mode="strips", fraction=0.4, strips=5, seed=1)
    assert len(a) == 2 and all(b.row_off == 0 and b.height == 100 and b.width == 100 for b in a)
    assert a == validation_blocks(100, 500, mode="strips", fraction=0.4, strips=5, seed=1)
    seeded = [validation_blocks(100, 500, mode="strips", fraction=0.4, strips=5, seed=s) for s in range(6)]
    assert {tuple(b.__dict__.values()) for blocks in seeded for b in blocks} != {tuple(b.__dict__.values()) for b in a}


def test_checkerboard_holds_out_every_other_block():
    blocks = validation_blocks(400, 400, mode="checkerboard", fraction=0.5, block_size=100)
    assert len(blocks) == 8
    assert all((b.row_off // 100 + b.col_off // 100) % 2 == 0 for b in blocks)


def test_a_scene_too_small_for_the_layout_is_a_clear_error():
    with pytest.raises(ConfigError, match="fewer than two"):
        validation_blocks(50, 50, mode="checkerboard", fraction=0.5, block_size=200)
