"""Weight windows for blending overlapping tile predictions (pure numpy).

``hann``: a raised-cosine taper towards every tile side that has a neighbour,
flat towards scene edges, so every pixel's weights are smooth across seams.
``crop``: weight 1 on the tile's core and 0 elsewhere, so each pixel comes
from exactly one tile.

:func:`tile_weights` gives a tile's raw weights.  :func:`grid_weights`
normalises them so that the weights of the tiles covering any pixel add up
to 1: a pixel's blended probabilities then keep full fixed-point precision
(:func:`~.stitch.quantise_tile`) wherever it lies, even where the raw tapers of
every tile covering it are tiny.  Weights are separable (rows x columns) and
tiles form a full grid, so the normaliser is a product of per-axis sums.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..tiling import Tile, axis_tiles
from .options import BLEND_MODES

__all__ = ["BLEND_MODES", "GridWeights", "grid_weights", "tile_weights"]

_FLOOR = 1e-3


def _hann_axis(size: int, taper_start: bool, taper_end: bool) -> np.ndarray:
    n = np.arange(size, dtype=np.float64)
    w = np.sin(np.pi * (n + 0.5) / size) ** 2
    half = size // 2
    if not taper_start:
        w[:half] = 1.0
    if not taper_end:
        w[half:] = 1.0
    return np.maximum(w, _FLOOR)


def _axis(size: int, start: int, core_start: int, core_end: int, length: int, mode: str) -> np.ndarray:
    """Raw weights along one axis of a read window: zero outside the scene."""
    if mode == "crop":
        w = np.zeros(size, dtype=np.float64)
        w[core_start - start : core_end - start] = 1.0
        return w
    if mode != "hann":
        raise ValueError(f"blend mode {mode!r} is not one of {BLEND_MODES}")
    w = _hann_axis(size, core_start > 0, core_end < length)
    w[max(0, length - start) :] = 0.0
    return w


def tile_weights(tile: Tile, scene_height: int, scene_width: int, mode: str) -> np.ndarray:
    """Raw float64 weights over ``tile.read`` (``(tile_size, tile_size)``), before masking invalid pixels."""
    read, core = tile.read, tile.core
    wr = _axis(read.height, read.row_off, core.row_off, core.row_end, scene_height, mode)
    wc = _axis(read.width, read.col_off, core.col_off, core.col_end, scene_width, mode)
    return np.outer(wr, wc)


def _normalised_axis(length: int, tile_size: int, overlap: int, mode: str) -> dict[int, np.ndarray]:
    """Per read start along one axis, weights that add up to 1 over the tiles covering each pixel."""
    parts = axis_tiles(length, tile_size, overlap)
    raw = {s: _axis(tile_size, s, c0, c1, length, mode) for s, c0, c1 in parts}
    total = np.zeros(max(length, tile_size), dtype=np.float64)
    for s, w in raw.items():
        total[s : s + tile_size] += w
    out = {}
    for s, w in raw.items():
        norm = total[s : s + tile_size]
        out[s] = np.divide(w, norm, out=np.zeros_like(w), where=w > 0)
    return out


@dataclass(frozen=True)
class GridWeights:
    """Normalised blend weights of every tile of one grid, by read start along each axis."""

    rows: dict[int, np.ndarray]
    cols: dict[int, np.ndarray]
    #: Read start -> the first read start with the same weights, so tiles with equal weights share a :meth:`key`.
    row_ids: dict[int, int]
    col_ids: dict[int, int]

    def weights(self, tile: Tile) -> np.ndarray:
        """Float64 ``(tile_size, tile_size)`` weights over ``tile.read``, before masking invalid pixels."""
        return np.outer(self.rows[tile.read.row_off], self.cols[tile.read.col_off])

    def key(self, tile: Tile) -> tuple[int, int]:
        return self.row_ids[tile.read.row_off], self.col_ids[tile.read.col_off]


def _ids(vectors: dict[int, np.ndarray]) -> dict[int, int]:
    first: dict[bytes, int] = {}
    return {s: first.setdefault(v.tobytes(), s) for s, v in vectors.items()}


@functools.lru_cache(maxsize=16)
def grid_weights(height: int, width: int, tile_size: int, overlap: int, mode: str) -> GridWeights:
    """Normalised weights for :func:`~geoseg.tiling.tile_grid` ``(height, width, tile_size, overlap)``."""
    rows = _normalised_axis(height, tile_size, overlap, mode)
    cols = _normalised_axis(width, tile_size, overlap, mode)
    return GridWeights(rows, cols, _ids(rows), _ids(cols))
