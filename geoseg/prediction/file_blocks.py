"""Decoding each block of the scene file once for all the overlapping tiles that share it.

A file is stored in blocks, each compressed on its own, and tile windows
rarely match them: a 512 px tile at a stride of 448 px over a file of 512 px
blocks touches four blocks, and every block is touched by about four tiles.
Reading tile windows leaves it to GDAL's block cache to decode each block
once, and that cache, sized for writing, forgets blocks before the tiles
below them come (an 8192 x 8192 scene took 0.8 CPU-s to read that way, 0.6
when every block was decoded once).

:class:`FileBlocks` reads whole file blocks with the one window reader (the
same pixels and masks as reading the tile windows), keeps each one until
every tile that needs it has been cut, counting from the tiles that will be
read, and cuts tiles from them.  It holds at most ``max_bytes``: beyond that
the least recently used blocks are dropped, and decoded again if a tile still
needs them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future

import numpy as np

from ..tiling import PixelWindow

__all__ = ["FileBlocks", "MAX_BYTES", "suits"]

#: Decoded blocks held at most, in bytes.  Tiles are read block by block of the plan, so what is held is the
#: boundary between plan blocks: about one row of file blocks across the scene (25 MB for a 16384 px wide
#: scene of three uint8 bands).
MAX_BYTES = 64 * 2**20
#: Blocks of this shape or smaller are cut from (GeoTIFF tiles); strips and larger blocks are left to GDAL.
_SMALLEST_SIDE, _LARGEST_AREA = 64, 1024 * 1024

#: ``(data (bands, h, w), valid (h, w))`` of one window.
Pixels = tuple[np.ndarray, np.ndarray]
#: A held block: its data, and its validity unless every pixel is valid (most blocks: a quarter less held).
Held = tuple[np.ndarray, np.ndarray | None]
Key = tuple[int, int]


def suits(block_shapes: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """The one block shape of the bands read, if tiles are best cut from blocks of it; else None."""
    shapes = set(block_shapes)
    if len(shapes) != 1:
        return None
    (h, w), = shapes
    return (h, w) if min(h, w) >= _SMALLEST_SIDE and h * w <= _LARGEST_AREA else None


class FileBlocks:
    """Blocks of a ``height`` x ``width`` file stored in ``block`` (rows, cols), decoded once each for ``tiles``.

    ``tiles`` are the windows that will be cut, each once (in any order);
    :meth:`cut` may be called from several threads, each with a ``read`` of
    its own dataset.
    """

    def __init__(self, block: tuple[int, int], height: int, width: int, tiles: Iterable[PixelWindow], *,
                 max_bytes: int = MAX_BYTES) -> None:
        self.block = block
        self.height, self.width = height, width
        self.max_bytes = max_bytes
        self._uses: collections.Counter[Key] = collections.Counter()
        for window in tiles:
            self._uses.update(self._keys(window))
        self._held: collections.OrderedDict[Key, Future[Held]] = collections.OrderedDict()
        self._sizes: dict[Key, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def _keys(self, window: PixelWindow) -> Iterator[Key]:
        (bh, bw), (r0, c0, r1, c1) = self.block, self._clip(window)
        for i in range(r0 // bh, (r1 - 1) // bh + 1 if r1 > r0 else 0):
            for j in range(c0 // bw, (c1 - 1) // bw + 1 if c1 > c0 else 0):
                yield i, j

    def _clip(self, window: PixelWindow) -> tuple[int, int, int, int]:
        r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
        return r0, c0, min(window.row_end, self.height), min(window.col_end, self.width)

    def _window(self, key: Key) -> PixelWindow:
        (bh, bw), (i, j) = self.block, key
        r0, c0 = i * bh, j * bw
        return PixelWindow(r0, c0, min(bh, self.height - r0), min(bw, self.width - c0))

    def _get(self, key: Key, read: Callable[[PixelWindow], Pixels]) -> Held:
        with self._lock:
            future = self._held.get(key)
            mine = future is None
            if future is None:
                future = self._held[key] = Future()
            else:
                self._held.move_to_end(key)
        if not mine:
            return future.result()  # decoded, or being decoded by another thread
        try:
            data, valid = read(self._window(key))
        except BaseException as exc:
            with self._lock:
                self._held.pop(key, None)
            future.set_exception(exc)
            raise
        pixels = (data, None if valid.all() else valid)
        future.set_result(pixels)
        with self._lock:
            if key in self._held:
                self._sizes[key] = data.nbytes + (0 if pixels[1] is None else valid.nbytes)
                self._bytes += self._sizes[key]
            self._shrink()
        return pixels

    def _drop(self, key: Key) -> None:
        self._held.pop(key, None)
        self._bytes -= self._sizes.pop(key, 0)

    def _shrink(self) -> None:
        """Drop the least recently used decoded blocks while over ``max_bytes`` (under the lock)."""
        for key in list(self._held):
            if self._bytes <= self.max_bytes:
                return
            if key in self._sizes:
                self._drop(key)

    def cut(self, window: PixelWindow, read: Callable[[PixelWindow], Pixels]) -> Pixels:
        """``window``'s pixels and validity, as ``read(window)`` would give them (zero and invalid outside the
        file), from the file blocks it touches (``read`` decodes a block that is not held)."""
        keys = list(self._keys(window))
        if not keys:
            return read(window)
        r0, c0, r1, c1 = self._clip(window)
        inside = (r0, c0, r1, c1) == (window.row_off, window.col_off, window.row_end, window.col_end)
        data: np.ndarray | None = None
        valid = np.empty((window.height, window.width), bool) if inside else np.zeros(
            (window.height, window.width), bool)
        for key in keys:
            block_data, block_valid = self._get(key, read)
            if data is None:
                shape = (block_data.shape[0], window.height, window.width)
                data = np.empty(shape, block_data.dtype) if inside else np.zeros(shape, block_data.dtype)
            part = self._window(key).intersection(PixelWindow(r0, c0, r1 - r0, c1 - c0))
            if part is None:  # cannot happen: keys come from the clipped window
                continue
            src, dst = part.relative_to(self._window(key)), part.relative_to(window)
            data[(slice(None), *dst)] = block_data[(slice(None), *src)]
            valid[dst] = True if block_valid is None else block_valid[src]
        with self._lock:
            for key in keys:
                self._uses[key] -= 1
                if self._uses[key] <= 0:
                    del self._uses[key]
                    if key in self._sizes:
                        self._drop(key)
        if data is None:  # cannot happen: there was at least one key
            return read(window)
        return data, valid
