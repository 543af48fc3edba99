"""Comparing pixel grids: one same-grid check with one tolerance, and the grid maths around it.

A grid is anything with ``width``, ``height``, ``transform`` (an
:class:`~affine.Affine` or its 6-tuple) and ``crs`` (a rasterio CRS, or None)
or ``crs_wkt``: an open rasterio dataset, a :class:`~geoseg.io.rasters.SceneInfo`,
a :class:`~geoseg.io.class_rasters.ClassRaster`.

Two grids are the same when they have the same size and CRS and every pixel
corner of one lies within :data:`GRID_TOLERANCE` of a pixel of the
other's.  Comparing corners rather than coefficients bounds the drift a tiny
difference in pixel size builds up across a large raster, and the tolerance
is far below anything nearest-neighbour reading could notice (a pixel centre
is half a pixel from every edge).  Grids that differ by more must be warped
onto each other (or refused), never read pixel for pixel.
"""

from __future__ import annotations

import math
from typing import Any

from affine import Affine

__all__ = ["GRID_TOLERANCE", "grid_bounds", "overlaps_grid", "rescaled_transform", "same_grid"]

#: Largest distance, in pixels, between corresponding pixel corners of two grids called the same.
GRID_TOLERANCE = 1e-3


def _transform(grid: Any) -> tuple[float, float, float, float, float, float]:
    return tuple(float(v) for v in tuple(grid.transform)[:6])  # type: ignore[return-value]


def _crs(grid: Any) -> Any:
    from rasterio.crs import CRS

    crs = getattr(grid, "crs", None)
    if crs is None and getattr(grid, "crs_wkt", None):
        crs = CRS.from_wkt(grid.crs_wkt)
    return crs


def same_grid(a: Any, b: Any) -> bool:
    """True if ``a`` and ``b`` have the same size and CRS and their pixel corners agree within the tolerance."""
    if (int(a.width), int(a.height)) != (int(b.width), int(b.height)):
        return False
    crs_a, crs_b = _crs(a), _crs(b)
    if crs_a is None or crs_b is None or crs_a != crs_b:
        return False
    ta, tb = _transform(a), _transform(b)
    pixel = min(math.hypot(tb[0], tb[3]), math.hypot(tb[1], tb[4]))
    if not pixel > 0:
        return False
    width, height = int(a.width), int(a.height)
    for col, row in ((0, 0), (width, 0), (0, height), (width, height)):
        dx = (ta[0] - tb[0]) * col + (ta[1] - tb[1]) * row + (ta[2] - tb[2])
        dy = (ta[3] - tb[3]) * col + (ta[4] - tb[4]) * row + (ta[5] - tb[5])
        if math.hypot(dx, dy) > GRID_TOLERANCE * pixel:
            return False
    return True


def grid_bounds(grid: Any) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` of a north-up grid."""
    from rasterio.transform import array_bounds

    return tuple(array_bounds(int(grid.height), int(grid.width), Affine(*_transform(grid))))


def overlaps_grid(bounds: tuple[float, float, float, float], grid: Any) -> bool:
    """True if ``(left, bottom, right, top)`` (in the grid's CRS) overlaps the grid's extent with some area."""
    west, south, east, north = grid_bounds(grid)
    left, bottom, right, top = bounds
    return left < east and right > west and bottom < north and top > south


def rescaled_transform(grid: Any, height: int, width: int) -> Affine:
    """Affine transform of the grid's whole extent resampled to ``height`` x ``width`` pixels."""
    return Affine(*_transform(grid)) * Affine.scale(int(grid.width) / width, int(grid.height) / height)
