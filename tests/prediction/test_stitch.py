"""Blocks, seams and fixed-point stitching: pure maths, property-tested, and the device code against its reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.prediction.blend import grid_weights
from geoseg.prediction.device import _finish_device, _Frontier, finish, finish_seam
from geoseg.prediction.job import BlockResult, Piece
from geoseg.prediction.local import SeamSums
from geoseg.prediction.plan import block_side, plan_blocks
from geoseg.prediction.stitch import finish_votes, quantisation_scale, quantise_tile
from geoseg.tiling import PixelWindow, tile_grid


@st.composite
def layouts(draw):
    tile = draw(st.integers(8, 64))
    overlap = draw(st.integers(0, int(tile * 0.75)))
    height = draw(st.integers(1, 6 * tile))
    width = draw(st.integers(1, 6 * tile))
    side = draw(st.integers(1, 4))
    return height, width, tile, overlap, side


def paint(shape, windows):
    cover = np.zeros(shape, dtype=int)
    for w in windows:
        cover[w.row_off : w.row_end, w.col_off : w.col_end] += 1
    return cover


@given(layouts())
@settings(max_examples=200, deadline=None)
def test_owned_windows_and_seams_cover_the_scene_once(layout):
    height, width, tile, overlap, side = layout
    tiles = tile_grid(height, width, tile, overlap)
    plan = plan_blocks(height, width, tile, overlap, side)
    assert sorted((t.row, t.col) for b in plan.blocks for t in b.tiles) == sorted((t.row, t.col) for t in tiles)
    assert {t for b in plan.blocks for t in b.tiles} == set(tiles)  # the same windows as the eager grid
    assert plan.tiles == len(tiles) == sum(len(b.tiles) for b in plan.blocks)
    pieces = [b.owned for b in plan.blocks if b.owned] + [s.window for s in plan.seams]
    assert (paint((height, width), pieces) == 1).all()
    scene = PixelWindow(0, 0, height, width)
    for b in plan.blocks:
        reads = [t.read.intersection(scene) for t in b.tiles]
        assert (paint((height, width), [b.extent]) >= np.minimum(1, paint((height, width), reads))).all()
        if b.owned is not None:  # no other block's tile touches an owned pixel
            others = [t.read for o in plan.blocks if o is not b for t in o.tiles]
            assert all(r.intersection(b.owned) is None for r in others)
    for s in plan.seams:  # a seam's blocks are exactly those whose tiles touch it
        touching = {b.index for b in plan.blocks if any(t.read.intersection(s.window) for t in b.tiles)}
        assert set(s.blocks) == touching and len(touching) >= 2


@given(layouts(), st.sampled_from(["hann", "crop"]))
@settings(max_examples=100, deadline=None)
def test_normalised_weights_add_up_to_one(layout, mode):
    height, width, tile, overlap, _ = layout
    weights = grid_weights(height, width, tile, overlap, mode)
    total = np.zeros((height, width))
    for t in tile_grid(height, width, tile, overlap):
        w = weights.weights(t)
        part = t.read.intersection(PixelWindow(0, 0, height, width))
        rows, cols = part.relative_to(t.read)
        total[part.row_off : part.row_end, part.col_off : part.col_end] += w[rows, cols]
        outside = np.ones_like(w, bool)
        outside[rows, cols] = False
        assert (w[outside] == 0).all()
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


def test_block_side_fits_memory_and_a_batch():
    assert block_side(tile_size=512, overlap=64, classes=2, batch_size=8) >= 3
    assert block_side(tile_size=512, overlap=64, classes=200, batch_size=1) == 1
    assert block_side(tile_size=512, overlap=64, classes=200, batch_size=16) == 4
    assert block_side(tile_size=512, overlap=64, classes=2, batch_size=4, tiles=81) == 2  # 25 blocks
    assert block_side(tile_size=512, overlap=64, classes=2, batch_size=8, tiles=10_000) == 4  # memory decides (26 MiB)


@given(layouts())
@settings(max_examples=100, deadline=None)
def test_quantisation_scale_bounds_the_coverage_of_every_pixel(layout):
    height, width, tile, overlap, _ = layout
    cover = paint((height, width), [t.read.intersection(PixelWindow(0, 0, height, width))
                                    for t in tile_grid(height, width, tile, overlap)])
    scale = quantisation_scale(height, width, tile, overlap)
    assert int(cover.max()) * scale <= 2**30  # the summed votes of a pixel fit int32 with room to spare
    assert scale == 1 << 24 or int(cover.max()) * scale * 2 > 2**30 // 2  # and it is not needlessly small


def quantised_scene(height, width, tile, overlap, classes, seed):
    rng = np.random.default_rng(seed)
    tiles = tile_grid(height, width, tile, overlap)
    weights = grid_weights(height, width, tile, overlap, "hann")
    scale = quantisation_scale(height, width, tile, overlap)
    quantised = []
    for t in tiles:
        p = rng.random((classes, tile, tile)).astype(np.float32)
        p /= p.sum(0)
        valid = rng.random((tile, tile)) > 0.05
        quantised.append((t, quantise_tile(p, valid, weights.weights(t), scale)))
    return tiles, quantised


def test_finish_on_torch_equals_the_numpy_reference():
    rng = np.random.default_rng(3)
    acc = rng.integers(0, 2**20, (4, 61, 37), dtype=np.int32)
    acc[:, 5:9] = 0  # no votes: nodata
    acc[1, 20] = acc[3, 20] = acc[:, 20].max(axis=0)  # ties: the first class wins
    ids, conf = finish(torch.from_numpy(acc), [7, 3, 9, 1])
    ref_ids, ref_conf = finish_votes(acc, [7, 3, 9, 1])
    assert np.array_equal(ids.numpy(), ref_ids) and np.array_equal(conf.numpy(), ref_conf)
    only_ids, none = finish(torch.from_numpy(acc), [7, 3, 9, 1], confidence=False)
    assert none is None and np.array_equal(only_ids.numpy(), ref_ids)


def test_finish_over_several_chunks_equals_the_numpy_reference():
    """Finishing works through the rows in chunks, the last one shorter; nodata and ties in each of them."""
    rng = np.random.default_rng(5)
    acc = rng.integers(0, 2**22, (3, 700, 400), dtype=np.int32)  # 280 000 pixels: three chunks of rows
    acc[:, 3:5] = acc[:, 333] = acc[:, 699, 100:] = 0
    acc[2, 400:420] = acc[0, 400:420]
    acc[:, 500:, 7] = [[5], [9], [9]]
    ids, conf = finish(torch.from_numpy(acc), [6, 2, 8])
    ref_ids, ref_conf = finish_votes(acc, [6, 2, 8])
    assert np.array_equal(ids.numpy(), ref_ids) and np.array_equal(conf.numpy(), ref_conf)
    assert (ref_ids[:, 7][500:] == 2).all() and (ref_ids[699, 100:] == 255).all() and (ref_conf[699, 100:] == 0).all()


@pytest.mark.parametrize("classes", [1, 2, 3])
@pytest.mark.parametrize("cols", [slice(None), slice(7, 390), slice(0, 3), slice(398, 400)])
def test_finish_of_some_columns_over_whole_rows_equals_the_reference(classes, cols):
    """A block's owned pixels are finished over whole rows of its accumulator and their columns cut out:
    the same bytes as finishing just those columns, in every chunk of rows, with and without confidence."""
    rng = np.random.default_rng(classes)
    acc = rng.integers(0, 2**22, (classes, 700, 400), dtype=np.int32)  # three chunks of rows
    acc[:, 3:5] = acc[:, 699, 100:] = acc[:, 600:610, 395:] = 0
    acc[-1, 400:420] = acc[0, 400:420]
    lut = [6, 2, 8][:classes]
    rows = acc[:, 2:698]  # rows of a larger accumulator: contiguous, as a block's are
    ref_ids, ref_conf = finish_votes(np.ascontiguousarray(rows[:, :, cols]), lut)
    ids, conf = finish(torch.from_numpy(rows), lut, cols=cols)
    assert ids.is_contiguous() and conf is not None and conf.is_contiguous()
    assert np.array_equal(ids.numpy(), ref_ids) and np.array_equal(conf.numpy(), ref_conf)
    only_ids, none = finish(torch.from_numpy(rows), lut, confidence=False, cols=cols)
    assert none is None and np.array_equal(only_ids.numpy(), ref_ids)
    assert (ref_ids == 255).any()


@given(layouts())
@settings(max_examples=100, deadline=None)
def test_a_blocks_tiles_first_reach_each_accumulator_pixel_once(layout):
    """Row by row, each tile writes where it is the first to reach the accumulator and adds where earlier tiles
    did: the written parts cover a block's extent exactly once, the added parts only what earlier tiles wrote."""
    height, width, tile, overlap, side = layout
    scene = PixelWindow(0, 0, height, width)
    for block in plan_blocks(height, width, tile, overlap, side).blocks:
        extent = block.extent
        written = np.zeros((extent.height, extent.width), int)
        frontier = _Frontier(extent.height, extent.width)
        for t in block.tiles:
            part = t.read.intersection(scene).intersection(extent)
            rows, cols = part.relative_to(extent)
            reached = np.zeros_like(written, bool)
            reached[rows, cols] = True
            covered, first = frontier.split(rows, cols)
            added = np.zeros_like(written)
            for r, c in covered:
                assert (written[r, c] > 0).all()  # earlier tiles wrote there
                added[r, c] += 1
            if first is not None:
                assert (written[first] == 0).all()
                written[first] += 1
                added[first] += 1
            assert np.array_equal(added, reached)  # the parts make up the tile's part, without overlaps
        assert (written == 1).all() and frontier.complete


def test_tiles_out_of_row_major_order_are_refused():
    frontier = _Frontier(20, 20)
    frontier.split(slice(0, 10), slice(0, 10))
    with pytest.raises(ValueError, match="row-major"):
        frontier.split(slice(0, 10), slice(12, 20))  # a gap of two columns
    frontier = _Frontier(20, 20)
    frontier.split(slice(0, 10), slice(0, 20))
    with pytest.raises(ValueError, match="row-major"):
        frontier.split(slice(12, 20), slice(0, 20))  # a gap of two rows
    assert not _Frontier(20, 20).complete


def test_finish_with_torch_kernels_equals_the_numpy_reference_too():
    """``finish`` runs numpy on the CPU and torch kernels on a GPU; the torch kernels, run here on CPU tensors,
    agree with the reference as well (ties, nodata, a strided view of a larger accumulator)."""
    rng = np.random.default_rng(4)
    acc = rng.integers(0, 2**24, (3, 90, 70), dtype=np.int32)
    acc[:, 10:13] = 0
    acc[2, 30] = acc[0, 30]
    view = torch.from_numpy(acc)[:, 5:80, 3:61]
    ids, conf = _finish_device(view, [4, 0, 2], confidence=True)
    ref_ids, ref_conf = finish_votes(acc[:, 5:80, 3:61], [4, 0, 2])
    assert np.array_equal(ids.numpy(), ref_ids) and np.array_equal(conf.numpy(), ref_conf)
    assert (ref_ids == 255).any() and (ref_ids == 4).any()


@pytest.mark.parametrize("side", [1, 2, 5])
def test_blocks_and_seams_in_any_order_give_the_whole_scene_sum(side):
    """Summing per block, then per seam, in any order, equals summing every tile into one scene accumulator."""
    height, width, classes = 150, 110, 3
    tiles, quantised = quantised_scene(height, width, 24, 10, classes, seed=side)
    whole = np.zeros((classes, height, width), np.int32)
    for t, q in quantised:
        part = t.read.intersection(PixelWindow(0, 0, height, width))
        rows, cols = part.relative_to(t.read)
        whole[:, part.row_off : part.row_end, part.col_off : part.col_end] += q[:, rows, cols]
    expected_ids, expected_conf = finish_votes(whole, [0, 1, 2])

    plan = plan_blocks(height, width, 24, 10, side)
    by_tile = {(t.row, t.col): q for t, q in quantised}
    results = []
    for block in plan.blocks:
        acc = np.zeros((classes, block.extent.height, block.extent.width), np.int32)
        for t in block.tiles:
            part = t.read.intersection(block.extent)
            src, dst = part.relative_to(t.read), part.relative_to(block.extent)
            acc[(slice(None), *dst)] += by_tile[(t.row, t.col)][(slice(None), *src)]
        owned = None
        if block.owned is not None:
            ids, conf = finish_votes(acc[(slice(None), *block.owned.relative_to(block.extent))], [0, 1, 2])
            owned = (block.owned, ids, conf)
        parts = {
            s.index: acc[(slice(None), *s.window.relative_to(block.extent))].copy() for s in plan.seams_of(block.index)
        }
        results.append((owned, parts))

    n = len(results)
    for order in (range(n), reversed(range(n)), np.random.default_rng(0).permutation(n)):
        got_ids = np.full((height, width), 77, np.uint8)
        got_conf = np.full((height, width), 77, np.uint8)
        sums = SeamSums(plan, [0, 1, 2])
        for i in order:
            owned, parts = results[i]
            pieces = sums.add(BlockResult(i, None, parts))
            if owned is not None:
                pieces.append(Piece(*owned))
            for p in pieces:
                w = p.window
                got_ids[w.row_off : w.row_end, w.col_off : w.col_end] = p.class_ids
                got_conf[w.row_off : w.row_end, w.col_off : w.col_end] = p.confidence
        assert sums.complete
        assert np.array_equal(got_ids, expected_ids) and np.array_equal(got_conf, expected_conf)


def test_finish_seam_adds_parts():
    plan = plan_blocks(40, 40, 16, 6, 1)
    seam = plan.seams[0]
    shape = (2, seam.window.height, seam.window.width)
    a, b = np.full(shape, 3, np.int32), np.full(shape, 4, np.int32)
    a[1] = 10
    piece = finish_seam(seam, [5, 6], [a, b])
    assert (piece.class_ids == 6).all()
    assert (piece.confidence == round(255 * 14 / 21)).all()
