"""Pixel windows: a rectangle of a raster's pixels, cutting a raster into blocks, and a window's pixel frame.

Pure maths, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from affine import Affine

__all__ = ["PixelWindow", "block_windows", "pixel_transform"]


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle of pixels: offsets of its top-left corner, and its size."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def row_end(self) -> int:
        return self.row_off + self.height

    @property
    def col_end(self) -> int:
        return self.col_off + self.width

    def intersection(self, other: PixelWindow) -> PixelWindow | None:
        r0, c0 = max(self.row_off, other.row_off), max(self.col_off, other.col_off)
        r1, c1 = min(self.row_end, other.row_end), min(self.col_end, other.col_end)
        if r1 <= r0 or c1 <= c0:
            return None
        return PixelWindow(r0, c0, r1 - r0, c1 - c0)

    def relative_to(self, outer: PixelWindow) -> tuple[slice, slice]:
        """Row and column slices of this window inside ``outer``'s array."""
        r, c = self.row_off - outer.row_off, self.col_off - outer.col_off
        return slice(r, r + self.height), slice(c, c + self.width)



def block_windows(height: int, width: int, block_size: int) -> list[PixelWindow]:
    """Cut a ``height`` x ``width`` raster into blocks of at most ``block_size`` pixels a side, row-major."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return [
        PixelWindow(r, c, min(block_size, height - r), min(block_size, width - c))
        for r in range(0, height, block_size)
        for c in range(0, width, block_size)
    ]


def pixel_transform(window: PixelWindow) -> Affine:
    """The pixel frame of ``window``: x = global column, y = -(global row), at pixel corners.

    Exact integers, shared by all blocks (so seam vertices match exactly), and
    north-up like a real raster, so GDAL never takes it for a missing geotransform.
    """
    return Affine(1.0, 0.0, float(window.col_off), 0.0, -1.0, -float(window.row_off))
