"""Decoding tiles in a pool of threads, ahead of the device that consumes them.

GDAL releases the GIL while it decodes, so threads decode in parallel.  GDAL
datasets are not thread-safe: each thread opens the scene once, for itself.
Pixels keep the file's data type (uint8 stays uint8, four times smaller than
float32); the device converts and normalises them.  A reader without threads
decodes in the thread that consumes the tiles (CPU lanes: see
:func:`default_read_threads`).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..io.rasters import open_on_grid, read_window
from ..tiling import PixelWindow, Tile
from .file_blocks import FileBlocks, suits
from .job import PredictJob

__all__ = ["ReadTile", "TileReader", "ReadCancelled", "default_read_threads"]

#: ``(tile, data (bands, h, w) in the file's type, valid (h, w) bool)``
ReadTile = tuple[Tile, np.ndarray, np.ndarray]


def default_read_threads(*, gpu: bool, share: int = 1) -> int:
    """Decoding threads for a device, when not asked for: none for the CPU, else the cores (over ``share``).

    On the CPU the lanes already keep the cores busy: each lane decodes its own tiles between network calls
    (0: in the consuming thread), and uses them while they are in its core's cache.  A decoding thread beside
    them only competes with them for the cores, and makes every lane but the first wait for its first tiles:
    with a network that costs nothing, an 8192 x 8192 scene on 2 cores took 0.91 of the time (median of ten
    paired runs) without one.  A GPU needs decoding threads to keep it busy.
    """
    if not gpu:
        return 0
    return max(1, (os.cpu_count() or 1) // max(1, share))


class ReadCancelled(Exception):
    """The reader was closed while tiles were still being consumed."""


class TileReader:
    """Reads tiles of one scene in ``threads`` threads; :meth:`stream` yields them in order, read ahead.

    Each thread opens the scene on first use and closes it when the reader
    closes (rasterio datasets must be closed by the thread that opened them).
    With ``threads=0`` each :meth:`stream` reads in the thread that consumes
    it, with a dataset of its own (the engines choose the count:
    :func:`default_read_threads`).
    Given the ``tiles`` that will be read (each once, in any order), tiles of a
    file stored in small blocks are cut from blocks decoded once each
    (:class:`~.file_blocks.FileBlocks`); otherwise each tile window is read.
    """

    def __init__(self, job: PredictJob, threads: int, *, tiles: Iterable[Tile] | None = None) -> None:
        self.job = job
        self.threads = max(0, threads)
        self._tiles = tiles
        self._blocks: FileBlocks | None = None
        self._blocks_lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[Tile, Future[ReadTile]] | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve, name=f"geoseg-read-{i}", daemon=True) for i in range(self.threads)
        ]
        for t in self._threads:
            t.start()

    def _serve(self) -> None:
        with contextlib.ExitStack() as stack:
            dataset = None
            while (item := self._work.get()) is not None:
                tile, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if self._closed.is_set():
                        raise ReadCancelled("the tile reader was closed")
                    if dataset is None:
                        dataset = stack.enter_context(open_on_grid(self.job.scene, self.job.grid))
                    future.set_result(self._read(tile, dataset))
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the tile
                    future.set_exception(exc)

    def _file_blocks(self, dataset: Any) -> FileBlocks | None:
        """The shared :class:`~.file_blocks.FileBlocks`, made on the first read (it needs the file's blocks)."""
        with self._blocks_lock:
            if self._tiles is not None:
                tiles, self._tiles = self._tiles, None
                shape = suits(dataset.block_shapes[b - 1] for b in self.job.bands) if self.job.grid is None else None
                if shape is not None:
                    self._blocks = FileBlocks(shape, dataset.height, dataset.width, (t.read for t in tiles))
            return self._blocks

    def _read(self, tile: Tile, dataset: Any) -> ReadTile:
        job = self.job

        def read(window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
            return read_window(job.scene, window, job.bands, use_mask=job.use_mask, dataset=dataset, dtype=None)

        blocks = self._file_blocks(dataset)
        data, valid = read(tile.read) if blocks is None else blocks.cut(tile.read, read)
        if not job.use_mask:
            valid = np.zeros_like(valid)
            valid[: max(0, job.height - tile.read.row_off), : max(0, job.width - tile.read.col_off)] = True
        return tile, data, valid

    def _submit(self, tile: Tile) -> Future[ReadTile]:
        """Queue ``tile`` for reading."""
        future: Future[ReadTile] = Future()
        if self._closed.is_set():
            future.set_exception(ReadCancelled("the tile reader was closed"))
        else:
            self._work.put((tile, future))
        return future

    def stream(self, tiles: Iterable[Tile], ahead: int) -> Generator[ReadTile, None, None]:
        """``tiles`` read in order, with up to ``ahead`` of them decoding ahead of the consumer (without threads:
        each read as it is asked for, in the consumer's thread)."""
        if not self._threads:
            yield from self._read_here(tiles)
            return
        source = iter(tiles)
        pending = collections.deque(self._submit(t) for t in itertools.islice(source, max(1, ahead)))
        try:
            while pending:
                result = pending.popleft().result()
                nxt = next(source, None)
                if nxt is not None:
                    pending.append(self._submit(nxt))
                yield result
        finally:
            for f in pending:
                f.cancel()

    def _read_here(self, tiles: Iterable[Tile]) -> Iterator[ReadTile]:
        with open_on_grid(self.job.scene, self.job.grid) as dataset:
            for tile in tiles:
                if self._closed.is_set():
                    raise ReadCancelled("the tile reader was closed")
                yield self._read(tile, dataset)

    def close(self) -> None:
        """Stop reading; each thread finishes the tile in hand, closes its dataset and ends."""
        if self._closed.is_set():
            return
        self._closed.set()
        for _ in self._threads:
            self._work.put(None)
        for t in self._threads:
            t.join()

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
