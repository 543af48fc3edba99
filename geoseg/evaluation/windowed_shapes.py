"""Polygons of class regions in a raster read window by window, merged across window seams.

Each window is polygonised with ``rasterio.features.shapes`` (4-connected, so
every polygon is valid) in pixel coordinates of the whole raster, where
coordinates are exact integers.  Pieces that touch an inner window edge are
kept apart and unioned at the end, which joins the parts of a region cut by a
seam; pieces that only meet at a corner stay separate, as 4-connectivity
requires.  The finished polygons are mapped to map coordinates with the
raster's affine transform.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tiling import PixelWindow

__all__ = ["WindowedShapes"]


class WindowedShapes:
    """Collects the polygons of ``class_ids`` from windows of a ``height`` x ``width`` raster."""

    def __init__(self, class_ids: Iterable[int], *, height: int, width: int, transform: object) -> None:
        self.class_ids = tuple(int(c) for c in class_ids)
        self.height = height
        self.width = width
        self.transform = transform
        self._closed: dict[int, list[object]] = {c: [] for c in self.class_ids}
        self._open: dict[int, list[object]] = {c: [] for c in self.class_ids}

    def add(self, window: PixelWindow, data: np.ndarray) -> None:
        """Polygonise one window of class ids (``data`` is ``window.height`` x ``window.width``)."""
        from affine import Affine
        from rasterio.features import shapes
        from shapely.geometry import shape

        if data.shape != (window.height, window.width):
            raise ValueError(f"data shape {data.shape} does not match window {window}")
        offset = Affine.translation(window.col_off, window.row_off)
        for cid in self.class_ids:
            mask = data == cid
            if not mask.any():
                continue
            for geom, _ in shapes(mask.view(np.uint8), mask=mask, connectivity=4, transform=offset):
                piece = shape(geom)
                if self._touches_seam(piece.bounds, window):
                    self._open[cid].append(piece)
                else:
                    self._closed[cid].append(piece)

    def _touches_seam(self, bounds: tuple[float, float, float, float], window: PixelWindow) -> bool:
        col0, row0, col1, row1 = bounds
        return (
            (window.row_off > 0 and row0 <= window.row_off)
            or (window.col_off > 0 and col0 <= window.col_off)
            or (window.row_end < self.height and row1 >= window.row_end)
            or (window.col_end < self.width and col1 >= window.col_end)
        )

    def polygons(self, class_id: int) -> list[object]:
        """The polygons of ``class_id`` in map coordinates."""
        import shapely

        pieces = self._open[int(class_id)]
        merged = list(shapely.get_parts(shapely.union_all(pieces))) if pieces else []
        pixel_space = np.asarray(self._closed[int(class_id)] + merged, dtype=object)
        if len(pixel_space) == 0:
            return []
        t = self.transform

        def to_map(coords: np.ndarray) -> np.ndarray:
            col, row = coords[:, 0], coords[:, 1]
            return np.column_stack([t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f])

        return list(shapely.transform(pixel_space, to_map))
