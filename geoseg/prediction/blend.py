"""Weight windows for blending overlapping tile predictions (pure numpy).

``hann``: a raised-cosine taper towards every tile side that has a neighbour,
flat towards scene edges, so every pixel's weights are smooth across seams.
``crop``: weight 1 on the tile's core and 0 elsewhere, so each pixel comes
from exactly one tile.
"""

from __future__ import annotations

import numpy as np

from ..tiling import Tile

__all__ = ["BLEND_MODES", "tile_weights"]

BLEND_MODES = ("hann", "crop")
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


def tile_weights(tile: Tile, scene_height: int, scene_width: int, mode: str) -> np.ndarray:
    """Float64 weights over ``tile.read`` (``(tile_size, tile_size)``), before masking invalid pixels."""
    read, core = tile.read, tile.core
    if mode == "crop":
        w = np.zeros((read.height, read.width), dtype=np.float64)
        rows, cols = core.relative_to(read)
        w[rows, cols] = 1.0
        return w
    if mode != "hann":
        raise ValueError(f"blend mode {mode!r} is not one of {BLEND_MODES}")
    wr = _hann_axis(read.height, core.row_off > 0, core.row_end < scene_height)
    wc = _hann_axis(read.width, core.col_off > 0, core.col_end < scene_width)
    w = np.outer(wr, wc)
    # Only pixels inside the scene matter; outside stays zero.
    w[max(0, scene_height - read.row_off) :, :] = 0.0
    w[:, max(0, scene_width - read.col_off) :] = 0.0
    return w
