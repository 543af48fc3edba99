"""Pure window and tile-grid maths: no I/O, no GDAL.

``windows``: :class:`PixelWindow` and block windows; ``grid``: overlapping tiles with cores that partition a scene.
"""

from __future__ import annotations

from .grid import Tile, axis_tiles, iter_tiles, tile_count, tile_grid
from .windows import PixelWindow, block_windows, pixel_transform

__all__ = [
    "PixelWindow", "Tile", "axis_tiles", "block_windows", "iter_tiles", "pixel_transform", "tile_count", "tile_grid",
]
