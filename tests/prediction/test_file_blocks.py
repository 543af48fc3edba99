"""Tiles cut from file blocks decoded once each are the pixels and masks of reading the tile windows."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest
import rasterio

from geoseg.io.rasters import read_window
from geoseg.prediction.file_blocks import FileBlocks, suits
from geoseg.prediction.job import PredictJob
from geoseg.prediction.plan import plan_blocks
from geoseg.prediction.read import TileReader
from geoseg.tiling import PixelWindow, tile_grid


def _scene(make_raster, dtype, nodata, *, height=300, width=270, bands=3, block=64):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.floating):
        data = rng.random((bands, height, width)).astype(dtype)
        data[1, 40:60, 10:200] = np.nan
    else:
        data = rng.integers(1, 200, (bands, height, width)).astype(dtype)
    if nodata is not None and not np.isnan(nodata):
        data[:, 100:130, 50:90] = nodata  # nodata in every band: invalid
        data[0, 200:210, 0:30] = nodata  # in one band only: still valid
    return make_raster(f"scene_{np.dtype(dtype).name}.tif", data, nodata=nodata, tiled=True, blockxsize=block,
                       blockysize=block)


class _CountingReader:
    def __init__(self, path, bands, dataset):
        self.path, self.bands, self.dataset = path, bands, dataset
        self.windows: Counter[tuple[int, int, int, int]] = Counter()
        self.lock = threading.Lock()

    def __call__(self, window):
        with self.lock:
            self.windows[(window.row_off, window.col_off, window.height, window.width)] += 1
        return read_window(self.path, window, self.bands, dataset=self.dataset, dtype=None)


@pytest.mark.parametrize(("dtype", "nodata"), [(np.uint8, 0), (np.int16, -9999), (np.float32, np.nan),
                                               (np.uint16, None)])
def test_tiles_cut_from_blocks_equal_reading_their_windows(make_raster, dtype, nodata):
    path = _scene(make_raster, dtype, nodata)
    tiles = tile_grid(300, 270, 96, 20)  # windows straddle blocks and reach outside the raster
    with rasterio.open(path) as ds:
        reader = _CountingReader(path, (1, 2, 3), ds)
        blocks = FileBlocks((64, 64), ds.height, ds.width, [t.read for t in tiles])
        for t in tiles:
            data, valid = blocks.cut(t.read, reader)
            ref_data, ref_valid = read_window(path, t.read, (1, 2, 3), dataset=ds, dtype=None)
            assert data.dtype == ref_data.dtype
            np.testing.assert_array_equal(data, ref_data)
            np.testing.assert_array_equal(valid, ref_valid)
        assert set(reader.windows.values()) == {1}  # every block decoded once
        assert len(reader.windows) == 5 * 5  # and only the blocks of the raster: ceil(300/64) x ceil(270/64)
        assert blocks.held_bytes == 0  # each dropped once its last tile was cut


def test_a_small_budget_drops_blocks_and_decodes_them_again(make_raster):
    path = _scene(make_raster, np.uint8, 0)
    tiles = tile_grid(300, 270, 96, 20)
    with rasterio.open(path) as ds:
        reader = _CountingReader(path, (1, 2, 3), ds)
        one_block = 3 * 64 * 64 + 64 * 64
        blocks = FileBlocks((64, 64), ds.height, ds.width, [t.read for t in tiles], max_bytes=2 * one_block)
        for t in tiles:
            data, valid = blocks.cut(t.read, reader)
            assert blocks.held_bytes <= 2 * one_block
            ref_data, ref_valid = read_window(path, t.read, (1, 2, 3), dataset=ds, dtype=None)
            np.testing.assert_array_equal(data, ref_data)
            np.testing.assert_array_equal(valid, ref_valid)
        assert max(reader.windows.values()) > 1  # some blocks were decoded again


def test_reader_threads_share_the_blocks_and_decode_each_once(make_raster, monkeypatch):
    import geoseg.prediction.read as read_module

    path = _scene(make_raster, np.uint8, 0, height=520, width=600)
    plan = plan_blocks(520, 600, 128, 32, 2)
    tiles = [t for b in plan.blocks for t in b.tiles]
    job = PredictJob(scene=str(path), bands=(1, 2, 3), grid=None, height=520, width=600, tile_size=128, overlap=32,
                     blend="uniform", scale=1 << 20, batch_size=2, use_mask=True, read_threads=4)
    decoded: Counter[tuple[int, int, int, int]] = Counter()
    lock = threading.Lock()

    def counting(path, window, *args, **kwargs):
        with lock:
            decoded[(window.row_off, window.col_off, window.height, window.width)] += 1
        return read_window(path, window, *args, **kwargs)

    monkeypatch.setattr(read_module, "read_window", counting)
    with TileReader(job, 4, tiles=tiles) as reader:
        got = list(reader.stream(tiles, ahead=8))
    assert [t for t, _, _ in got] == tiles
    with rasterio.open(path) as ds:
        for tile, data, valid in got:
            ref_data, ref_valid = read_window(path, tile.read, (1, 2, 3), dataset=ds, dtype=None)
            np.testing.assert_array_equal(data, ref_data)
            np.testing.assert_array_equal(valid, ref_valid)
    assert len(decoded) == 9 * 10  # the file's 64 px blocks, not the tiles' windows
    assert set(decoded.values()) == {1}  # four threads, each block decoded once


def test_a_reader_without_threads_reads_in_each_consumers_thread(make_raster, monkeypatch):
    """Two lanes, each streaming its own blocks' tiles with no decoding thread: the tiles are read in the lane's
    own thread, with a dataset opened and closed there, and the blocks they share are still decoded once."""
    import geoseg.prediction.read as read_module

    path = _scene(make_raster, np.uint8, 0)
    plan = plan_blocks(300, 270, 64, 16, 1)
    tiles = [t for b in plan.blocks for t in b.tiles]
    job = PredictJob(scene=str(path), bands=(1, 2, 3), grid=None, height=300, width=270, tile_size=64, overlap=16,
                     blend="uniform", scale=1 << 20, batch_size=1, use_mask=True, read_threads=None)
    decoded: Counter[tuple[int, int]] = Counter()
    opened: list[str] = []
    lock = threading.Lock()

    def counting(path, window, *args, **kwargs):
        with lock:
            decoded[(window.row_off, window.col_off)] += 1
        return read_window(path, window, *args, **kwargs)

    open_on_grid = read_module.open_on_grid

    def opening(*args, **kwargs):
        opened.append(threading.current_thread().name)
        return open_on_grid(*args, **kwargs)

    monkeypatch.setattr(read_module, "read_window", counting)
    monkeypatch.setattr(read_module, "open_on_grid", opening)
    assert len(plan.blocks) >= 4
    halves = [[t for b in plan.blocks[i::2] for t in b.tiles] for i in range(2)]
    got: dict[str, list] = {}
    with TileReader(job, 0, tiles=tiles) as reader:
        assert not [t for t in threading.enumerate() if t.name.startswith("geoseg-read")]

        def lane(name, mine):
            stream = reader.stream(mine, ahead=3)
            got[name] = [(tile, data, valid, threading.current_thread().name) for tile, data, valid in stream]

        lanes = [threading.Thread(target=lane, args=(f"lane-{i}", h), name=f"lane-{i}") for i, h in enumerate(halves)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
    assert sorted(opened) == ["lane-0", "lane-1"]
    with rasterio.open(path) as ds:
        for i, half in enumerate(halves):
            assert [t for t, *_ in got[f"lane-{i}"]] == half
            for tile, data, valid, thread in got[f"lane-{i}"]:
                assert thread == f"lane-{i}"
                ref_data, ref_valid = read_window(path, tile.read, (1, 2, 3), dataset=ds, dtype=None)
                np.testing.assert_array_equal(data, ref_data)
                np.testing.assert_array_equal(valid, ref_valid)
    assert set(decoded.values()) == {1} and len(decoded) == 5 * 5  # each 64 px block of the file once


def test_a_closed_reader_without_threads_stops_its_streams(make_raster):
    from geoseg.prediction.read import ReadCancelled

    path = _scene(make_raster, np.uint8, 0)
    tiles = tile_grid(300, 270, 96, 20)
    job = PredictJob(scene=str(path), bands=(1, 2, 3), grid=None, height=300, width=270, tile_size=96, overlap=20,
                     blend="uniform", scale=1 << 20, batch_size=1, use_mask=True, read_threads=None)
    reader = TileReader(job, 0)
    stream = reader.stream(tiles, ahead=2)
    next(stream)
    reader.close()
    with pytest.raises(ReadCancelled):
        next(stream)


def test_without_the_tiles_to_come_each_window_is_read(make_raster, monkeypatch):
    import geoseg.prediction.read as read_module

    path = _scene(make_raster, np.uint8, 0)
    tiles = tile_grid(300, 270, 96, 20)
    job = PredictJob(scene=str(path), bands=(1, 2, 3), grid=None, height=300, width=270, tile_size=96, overlap=20,
                     blend="uniform", scale=1 << 20, batch_size=2, use_mask=True, read_threads=1)
    windows = []
    monkeypatch.setattr(read_module, "read_window", lambda p, w, *a, **k: windows.append(w) or read_window(p, w, *a,
                                                                                                        **k))
    with TileReader(job, 1) as reader:
        list(reader.stream(tiles, ahead=2))
    assert windows == [t.read for t in tiles]


def test_only_small_blocks_of_one_shape_are_cut_from():
    assert suits([(512, 512)] * 3) == (512, 512)
    assert suits([(1, 8000)]) is None  # strips: left to GDAL
    assert suits([(16, 4000)]) is None
    assert suits([(512, 512), (256, 256)]) is None
    assert suits([(4096, 4096)]) is None


def test_a_window_outside_the_file_is_read_as_it_is(make_raster):
    path = _scene(make_raster, np.uint8, 0)
    with rasterio.open(path) as ds:
        reader = _CountingReader(path, (1, 2, 3), ds)
        blocks = FileBlocks((64, 64), ds.height, ds.width, [])
        data, valid = blocks.cut(PixelWindow(400, 10, 32, 32), reader)
        assert data.shape == (3, 32, 32) and not valid.any() and not data.any()
