"""Truth polygons traced from a truth raster by the code that vectorises predictions.

Polygon F1 compares predicted polygons (written by ``geoseg vectorize``) with
truth polygons; when the truth is a raster, its polygons must be traced the
same way, or the comparison measures the tracers rather than the prediction.
So the windows of truth that evaluation streams (on the prediction's grid,
in row-major block order) go through :func:`geoseg.vectorization.tasks.trace_block`
(4-connected, in vectorize's exact pixel frame), objects cut by window seams
are joined by :class:`geoseg.vectorization.seams.SeamMerger`, and every object
is finished by :func:`geoseg.vectorization.finish.finish_polygons` without
filters (no minimum area, simplification or hole filling).  Memory holds the
finished polygons and the open seam pieces, never the whole raster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..classes import NODATA
from ..io.rasters import SceneInfo
from ..measure import metric_frame
from ..tiling import PixelWindow
from ..vectorization.finish import FeatureBatch, PolygonOptions, finish_polygons
from ..vectorization.seams import SeamMerger
from ..vectorization.tasks import VectorizeJob, trace_block

__all__ = ["TRUTH_POLYGON_OPTIONS", "TracedTruth"]

#: Truth is traced exactly: no minimum area, no simplification, no hole filling, no squaring.
TRUTH_POLYGON_OPTIONS = PolygonOptions(min_area=0.0, simplify=0.0, fill_holes=0.0, regularize=False)


class TracedTruth:
    """Collects the polygons of ``class_ids`` from the truth windows of ``grid``'s block grid ``windows``."""

    def __init__(self, class_ids: Iterable[int], grid: SceneInfo, windows: Sequence[PixelWindow]) -> None:
        rows = len({w.row_off for w in windows})
        cols = len(windows) // max(rows, 1)
        if rows * cols != len(windows):
            raise ValueError(f"{len(windows)} windows do not form a grid of {rows} rows")
        self._index = {(w.row_off, w.col_off): i for i, w in enumerate(windows)}
        a, _, c, _, e, f = grid.transform
        bounds = (c, f + e * grid.height, c + a * grid.width, f)
        self._job = VectorizeJob(
            raster=grid.path,
            class_ids=tuple(int(k) for k in class_ids),
            height=grid.height,
            width=grid.width,
            transform=grid.transform,
            frame=metric_frame(grid.crs_wkt, bounds),
            options=TRUTH_POLYGON_OPTIONS,
        )
        self._merger = SeamMerger(rows, cols, with_confidence=False)
        self._batches: list[FeatureBatch] = []
        self._done: FeatureBatch | None = None

    def add(self, window: PixelWindow, data: np.ndarray) -> None:
        """Trace one window of truth class ids (NODATA where there is none); windows come in row-major order."""
        if data.shape != (window.height, window.width):
            raise ValueError(f"data shape {data.shape} does not match window {window}")
        index = self._index[(window.row_off, window.col_off)]
        result = trace_block(self._job, window, index, data, data != NODATA)
        self._batches.append(result.features)
        merged = self._merger.add(result)
        if len(merged):
            job = self._job
            self._batches.append(
                finish_polygons(
                    merged.geoms, merged.class_id, None, transform=job.transform, frame=job.frame, options=job.options
                )
            )

    def polygons(self, class_id: int) -> list[Any]:
        """The truth polygons of ``class_id`` in the grid's CRS (one MultiPolygon per 4-connected object)."""
        import shapely

        if self._done is None:
            self._merger.check_complete()
            self._done = FeatureBatch.concat(self._batches)
            self._batches = []
        done = self._done
        return list(shapely.from_wkb(done.wkb[done.class_id == int(class_id)]))
