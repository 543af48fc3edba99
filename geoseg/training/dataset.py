"""Training scenes as a torchgeo :class:`~torchgeo.datasets.GeoDataset`: image and label raster together.

Samplers query the dataset with torchgeo's ``[x, y, t]`` slices.  Each scene is
read on its own pixel grid, in its own CRS, and is never resampled; the time
slice tells scenes apart: scene ``k`` occupies the (synthetic) day ``k`` after
1970-01-01 in the index.  This is why geoseg uses its own GeoDataset instead
of an :class:`~torchgeo.datasets.IntersectionDataset` of two
:class:`~torchgeo.datasets.RasterDataset`: those warp every file into one CRS,
open any file type (a ``.tif`` may be a VRT), and read no validity masks.

A sample is ``{"image": float32 (bands, h, w) normalised, "mask": int64 (h, w)
output channel or IGNORE_INDEX, "valid": bool (h, w)}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from ..classes import NODATA
from ..io.rasters import SceneInfo, open_raster, read_window
from ..model.card import Normalization
from ..model.preprocess import normalise
from ..tiling import PixelWindow
from .labels import read_label_window
from .losses import IGNORE_INDEX

__all__ = ["SceneTiles", "label_lut", "query_to_window", "scene_interval", "window_to_query"]

_EPOCH = pd.Timestamp("1970-01-01")


def scene_interval(k: int) -> pd.Interval:
    """The (synthetic) time interval that identifies scene ``k`` in the dataset index."""
    start = _EPOCH + pd.Timedelta(days=k)
    return pd.Interval(start, start + pd.Timedelta(hours=12), closed="both")


def window_to_query(info: SceneInfo, k: int, window: PixelWindow) -> tuple[slice, slice, slice]:
    """torchgeo's ``[x, y, t]`` slice of a pixel window of scene ``k`` (north-up grid)."""
    a, _, c, _, e, f = info.transform
    x0, x1 = c + a * window.col_off, c + a * window.col_end
    y1, y0 = f + e * window.row_off, f + e * window.row_end
    t = scene_interval(k)
    return slice(x0, x1, abs(a)), slice(y0, y1, abs(e)), slice(t.left, t.right)


def query_to_window(info: SceneInfo, x: slice, y: slice) -> PixelWindow:
    """The pixel window of scene ``info`` a spatial query covers (snapped to whole pixels)."""
    a, _, c, _, e, f = info.transform
    col0 = round((x.start - c) / a)
    col1 = round((x.stop - c) / a)
    row0 = round((y.stop - f) / e)
    row1 = round((y.start - f) / e)
    return PixelWindow(row0, col0, max(1, row1 - row0), max(1, col1 - col0))


def label_lut(class_ids: Sequence[int], ignore_id: int | None) -> np.ndarray:
    """Label id (0..255) -> output channel, or IGNORE_INDEX for the ignore id and 'no label'."""
    lut = np.full(NODATA + 1, IGNORE_INDEX, dtype=np.int64)
    for channel, cid in enumerate(class_ids):
        lut[cid] = channel
    return lut


class SceneTiles(GeoDataset):
    """Image + label raster of each training scene, read window by window."""

    def __init__(
        self,
        scenes: Sequence[SceneInfo],
        labels: Sequence[str],
        *,
        normalization: Normalization,
        lut: np.ndarray,
        scored: Mapping[tuple[int, PixelWindow], PixelWindow] | None = None,
        use_mask: bool = True,
    ) -> None:
        if len(scenes) != len(labels) or not scenes:
            raise ValueError("SceneTiles needs one label raster per scene and at least one scene")
        self.scenes = tuple(scenes)
        self.labels = tuple(labels)
        self.paths = [s.path for s in scenes]
        self.normalization = normalization
        self.lut = lut
        self.scored = dict(scored or {})
        self.use_mask = use_mask
        crs = {s.crs_wkt for s in scenes}
        geometries = []
        for s in scenes:
            x, y, _ = window_to_query(s, 0, PixelWindow(0, 0, s.height, s.width))
            geometries.append(shapely.box(x.start, y.start, x.stop, y.stop))
        intervals = pd.IntervalIndex([scene_interval(k) for k in range(len(scenes))], name="datetime")
        # One CRS when all scenes share it; otherwise each footprint is in its own scene's CRS.
        self.index = GeoDataFrame({"filepath": self.paths}, index=intervals, geometry=geometries,
                                  crs=scenes[0].crs_wkt if len(crs) == 1 else None)
        self._res = (abs(scenes[0].transform[0]), abs(scenes[0].transform[4]))
        self._handles: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}  # open files never cross process boundaries
        return state

    def _open(self, path: str) -> Any:
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = open_raster(path)
        return handle

    def locate(self, query: GeoSlice) -> tuple[int, PixelWindow]:
        """Scene number and pixel window of a query."""
        x, y, t = self._disambiguate_slice(query)
        hits = np.flatnonzero(self.index.index.overlaps(pd.Interval(t.start, t.stop, closed="both")))
        if len(hits) != 1:
            raise IndexError(f"query {query} matches {len(hits)} scenes; its time slice must pick exactly one")
        k = int(hits[0])
        return k, query_to_window(self.scenes[k], x, y)

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        k, window = self.locate(query)
        info = self.scenes[k]
        data, valid = read_window(
            info.path, window, info.data_bands, use_mask=self.use_mask, dataset=self._open(info.path)
        )
        ids = read_label_window(self.labels[k], window, dataset=self._open(self.labels[k]))
        target = self.lut[np.clip(ids, 0, NODATA)]
        target[~valid] = IGNORE_INDEX
        scored = self.scored.get((k, window))
        if scored is not None:
            keep = np.zeros(target.shape, dtype=bool)
            keep[scored.relative_to(window)] = True
            target[~keep] = IGNORE_INDEX
        image = normalise(data, valid, self.normalization)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(target), "valid": torch.from_numpy(valid)}
