"""Size and time budgets, checked right after opening: declared sizes, strip bombs, resampling, tile counts."""

from __future__ import annotations

import os
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import hostile as h

from geoseg.errors import InputError, UsageError
from geoseg.io.rasters import inspect_scene, open_raster
from geoseg.safety.limits import (
    MAX_BLOCK_BYTES,
    MAX_TILES,
    check_block_budget,
    check_raster_budget,
    check_resample_factor,
    check_tile_budget,
)
from geoseg.safety.tiff import bytes_reader, parse_tiff_layout, read_tiff_layout
from geoseg.tiling import iter_tiles, tile_count, tile_grid


def test_a_declared_250000_square_scene_is_refused_at_once(tmp_path):
    huge = h.write_declared_size(tmp_path / "huge.tif", width=250_000, height=250_000, rows_per_strip=256)
    assert huge.stat().st_size < 20_000
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"huge.tif.*250000 x 250000 pixels.*gdal_retile"):
        inspect_scene(huge)
    with pytest.raises(InputError, match="250000 x 250000"):
        open_raster(huge)  # every reader opens through the same check
    assert time.perf_counter() - started < 5


def test_a_strip_bomb_is_refused_before_any_pixel_is_decoded(tmp_path):
    bomb = h.write_declared_size(tmp_path / "bomb.tif", width=12_000, height=12_000)
    layout = read_tiff_layout(bomb)
    assert (layout.block_width, layout.block_height, layout.compressed) == (12_000, 12_000, True)
    with pytest.raises(InputError, match=r"bomb.tif.*compressed blocks of 12000 x 12000.*TILED=YES"):
        inspect_scene(bomb)


def test_ordinary_layouts_pass(tmp_path):
    tiled = h.write_scene(tmp_path / "tiled.tif", size=300)
    strips = h.write_scene(tmp_path / "strips.tif", size=300, tiled=False)
    raw = h.write_scene(tmp_path / "raw.tif", size=300, tiled=False, compress=None)
    assert read_tiff_layout(tiled).tiled and (read_tiff_layout(tiled).block_width, 64) == (64, 64)
    assert not read_tiff_layout(strips).tiled and read_tiff_layout(strips).block_width == 300
    assert not read_tiff_layout(raw).compressed
    for path in (tiled, strips, raw):
        assert inspect_scene(path).width == 300


def test_uncompressed_single_strip_is_not_a_bomb(tmp_path):
    """GDAL reads parts of uncompressed strips; only compressed blocks are decoded whole."""
    path = h.write_scene(tmp_path / "one_strip.tif", size=300, tiled=False, compress=None, blockysize=300)
    assert read_tiff_layout(path).block_height == 300
    assert inspect_scene(path).height == 300


def test_tiff_layout_of_bigtiff_and_big_endian():
    def tiff(order: str, big: bool) -> bytes:
        entries = [(256, 4, 6000), (257, 4, 4000), (258, 3, 8), (259, 3, 8), (277, 3, 3), (278, 4, 4000)]
        if big:
            head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HHHQ", 43, 8, 0, 16)
            body = struct.pack(order + "Q", len(entries))
            for tag, kind, value in entries:
                fmt = "HHQ" + ("H6x" if kind == 3 else "I4x")
                body += struct.pack(order + fmt, tag, kind, 1, value)
            return head + body + struct.pack(order + "Q", 0)
        head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
        body = struct.pack(order + "H", len(entries))
        for tag, kind, value in entries:
            body += struct.pack(order + ("HHI" + ("H2x" if kind == 3 else "I")), tag, kind, 1, value)
        return head + body + struct.pack(order + "I", 0)

    for order in "<>":
        for big in (False, True):
            layout = parse_tiff_layout(bytes_reader(tiff(order, big)))
            assert (layout.width, layout.height, layout.block_height, layout.samples) == (6000, 4000, 4000, 3)
            with pytest.raises(InputError, match="6000 x 4000"):
                check_block_budget("x.tif", block_width=layout.block_width, block_height=layout.block_height,
                                   samples=layout.samples_per_block, bits=layout.bits)


@pytest.mark.parametrize("data", [b"", b"II", b"II*\0", b"MM\0*\0\0\0\x04", b"II+\0\x08\0\0\0", b"XX*\0\0\0\0\0",
                                  b"II*\0" + struct.pack("<I", 1 << 31)])
def test_malformed_headers_are_value_errors(data):
    with pytest.raises(ValueError):
        parse_tiff_layout(bytes_reader(data))


def test_raster_budget_counts_bands_and_bytes():
    check_raster_budget("ok.tif", width=100_000, height=100_000, count=3, dtype="uint8")
    with pytest.raises(InputError, match="bands of float64"):
        check_raster_budget("deep.tif", width=100_000, height=100_000, count=4, dtype="float64")
    check_block_budget("ok.tif", block_width=4096, block_height=4096, samples=4, bits=8)
    assert 4096 * 4096 * 4 <= MAX_BLOCK_BYTES


def test_resample_factor_is_bounded():
    check_resample_factor("s.tif", scene_m=0.3, model_m=0.15)
    with pytest.raises(UsageError, match=r"300 m pixels.*0\.15 m.*upsample it 2e\+03 times"):
        check_resample_factor("s.tif", scene_m=300.0, model_m=0.15)
    with pytest.raises(UsageError, match="downsample"):
        check_resample_factor("s.tif", scene_m=0.01, model_m=0.15)
    with pytest.raises(InputError, match="not a positive number"):
        check_resample_factor("s.tif", scene_m=float("nan"), model_m=0.15)


def test_tile_budget():
    check_tile_budget("s.tif", tiles=tile_count(131_072, 131_072, 256, 64), tile_size=256, overlap=64)
    with pytest.raises(InputError, match="larger tile size or a smaller overlap"):
        check_tile_budget("s.tif", tiles=tile_count(20_000, 20_000, 8, 7), tile_size=8, overlap=7)
    assert tile_count(20_000, 20_000, 8, 7) > MAX_TILES


@given(st.integers(1, 700), st.integers(1, 700), st.integers(8, 96), st.data())
@settings(max_examples=200, deadline=None)
def test_lazy_tiles_match_the_grid(height, width, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    lazy = iter_tiles(height, width, tile, overlap)
    assert iter(lazy) is lazy  # a generator: nothing is made up front
    tiles = list(lazy)
    assert tiles == tile_grid(height, width, tile, overlap)
    assert len(tiles) == tile_count(height, width, tile, overlap)


def test_lazy_tiles_of_a_huge_grid_cost_nothing_up_front():
    started = time.perf_counter()
    tiles = iter_tiles(131_072, 131_072, 256, 64)
    first = next(tiles)
    assert first.row == 0 and first.col == 0 and tile_count(131_072, 131_072, 256, 64) > 400_000
    assert time.perf_counter() - started < 1


def test_vector_and_model_files_beyond_their_budget(tmp_path):
    from geoseg.errors import ModelError
    from geoseg.io.vectors import read_polygon_layer
    from geoseg.model.file import read_card
    from geoseg.safety.limits import MAX_MODEL_BYTES, MAX_VECTOR_BYTES

    truth = h.write_polygons(tmp_path / "truth.geojson", driver="GeoJSON")
    os.truncate(truth, MAX_VECTOR_BYTES + 1)  # sparse: no disk used
    with pytest.raises(InputError, match=r"truth.geojson.*GiB, more than geoseg reads whole.*ogr2ogr -spat"):
        read_polygon_layer(truth, target_crs=h.CRS, what="truth")
    model = h.write_card_only_model(tmp_path / "m.safetensors", h.shipped_card())
    os.truncate(model, MAX_MODEL_BYTES + 1)
    with pytest.raises(ModelError, match="more than geoseg loads"):
        read_card(model)
