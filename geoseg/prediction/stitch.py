"""Stitching tile probabilities into finished rows of a scene, in bounded memory.

Tiles are weighted, quantised to integers on the workers
(:func:`quantise_tile`), and added here into per-band accumulators, where a
*band* is the core rows of one row of tiles.  Integer addition does not depend
on order, so the output is identical whatever order tiles finish in.  A band
is finished (argmax, confidence) and handed to a writer as soon as every tile
that overlaps it has arrived, then dropped: memory holds only the bands that
tiles in flight touch, never a classes x height x width array for the scene.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..classes import NODATA
from ..tiling import PixelWindow, Tile
from .blend import tile_weights

__all__ = ["quantisation_scale", "quantise_tile", "BandStitcher", "FinishedBand"]


def quantisation_scale(tiles: Sequence[Tile]) -> int:
    """Largest power-of-two scale whose per-pixel sums cannot overflow int32."""
    rows = {t.read.row_off for t in tiles}
    cols = {t.read.col_off for t in tiles}
    size_r = max(t.read.height for t in tiles)
    size_c = max(t.read.width for t in tiles)
    # Upper bound on how many read windows cover any one pixel.
    per_row = max(sum(1 for r in rows if r <= x < r + size_r) for x in rows)
    per_col = max(sum(1 for c in cols if c <= x < c + size_c) for x in cols)
    cover = max(per_row, 1) * max(per_col, 1)
    bits = 30 - int(np.ceil(np.log2(cover)))
    if bits < 16:
        raise ValueError(f"tiles overlap too much ({cover} tiles cover one pixel); reduce the overlap")
    return 1 << min(bits, 24)


def quantise_tile(
    probs: np.ndarray, valid: np.ndarray, tile: Tile, scene_height: int, scene_width: int, mode: str, scale: int
) -> np.ndarray:
    """``round(weight * valid * probs * scale)`` as int32 ``(classes, h, w)``."""
    w = tile_weights(tile, scene_height, scene_width, mode) * valid
    q = np.rint(probs.astype(np.float64) * (w * scale)[None])
    return q.astype(np.int32)


@dataclass(frozen=True)
class FinishedBand:
    """A finished band of rows: class ids (uint8, nodata 255) and confidence (uint8, 0 = nodata)."""

    window: PixelWindow
    class_ids: np.ndarray
    confidence: np.ndarray


class BandStitcher:
    """Accumulate quantised tiles; call ``sink`` with each band once it is complete."""

    def __init__(
        self,
        tiles: Sequence[Tile],
        *,
        height: int,
        width: int,
        class_ids: Sequence[int],
        sink: Callable[[FinishedBand], None],
    ) -> None:
        self.height, self.width = height, width
        self._lut = np.asarray(class_ids, dtype=np.uint8)
        self._sink = sink
        self._bands: dict[int, PixelWindow] = {}
        for t in tiles:
            self._bands.setdefault(t.row, PixelWindow(t.core.row_off, 0, t.core.height, width))
        self._expected = {b: 0 for b in self._bands}
        for t in tiles:
            for b in self._bands_touched(t):
                self._expected[b] += 1
        self._received = dict.fromkeys(self._bands, 0)
        self._acc: dict[int, np.ndarray] = {}
        self.finished = 0

    def _bands_touched(self, tile: Tile) -> list[int]:
        r0, r1 = tile.read.row_off, tile.read.row_end
        return [b for b, win in self._bands.items() if win.row_off < r1 and win.row_end > r0]

    @property
    def live_bands(self) -> int:
        return len(self._acc)

    def add(self, tile: Tile, quantised: np.ndarray) -> None:
        scene = PixelWindow(0, 0, self.height, self.width)
        for b in self._bands_touched(tile):
            band = self._bands[b]
            part = tile.read.intersection(band)
            part = part.intersection(scene) if part is not None else None
            if part is not None:
                acc = self._acc.get(b)
                if acc is None:
                    acc = self._acc[b] = np.zeros((quantised.shape[0], band.height, band.width), dtype=np.int32)
                src_r, src_c = part.relative_to(tile.read)
                dst_r, dst_c = part.relative_to(band)
                acc[:, dst_r, dst_c] += quantised[:, src_r, src_c]
            self._received[b] += 1
            if self._received[b] == self._expected[b]:
                self._finish(b)

    def _finish(self, b: int) -> None:
        band = self._bands[b]
        acc = self._acc.pop(b, None)
        if acc is None:
            acc = np.zeros((len(self._lut), band.height, band.width), dtype=np.int32)
        total = acc.sum(axis=0, dtype=np.int64)
        best = acc.argmax(axis=0)
        top = np.take_along_axis(acc, best[None], axis=0)[0].astype(np.float64)
        valid = total > 0
        ids = np.where(valid, self._lut[best], NODATA).astype(np.uint8)
        conf = np.zeros(total.shape, dtype=np.uint8)
        conf[valid] = np.clip(np.rint(255.0 * top[valid] / total[valid]), 1, 255).astype(np.uint8)
        self.finished += 1
        self._sink(FinishedBand(band, ids, conf))

    @property
    def complete(self) -> bool:
        return self.finished == len(self._bands)
