"""Polygon metrics of an evaluation: predicted polygon layers against truth polygons, per class.

Each layer of the predicted polygons (a GeoPackage with one layer per class,
layer name = class name, as ``geoseg vectorize`` writes) is reprojected to the
prediction's CRS and matched one to one with the truth polygons of its class
(:func:`geoseg.matching.match_polygons`).  A predicted polygon that matches
nothing and whose representative point has no truth label (truth nodata or
the ignore id) is left out instead of counted as a false positive: where
nobody labelled, a prediction cannot be called wrong.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..classes import NODATA, ClassInfo
from ..errors import InputError
from ..io.rasters import SceneInfo
from ..io.vectors import list_polygon_layers, read_polygon_layer
from ..tiling import PixelWindow
from .matching import match_polygons

__all__ = ["PredictedLayer", "polygon_metrics", "read_predicted_layers"]


class PredictedLayer:
    """A layer of predicted polygons and where their representative points fall in the truth."""

    def __init__(self, cls: ClassInfo, layer: str, geoms: list[Any], grid: SceneInfo) -> None:
        import shapely

        self.cls, self.layer, self.geoms = cls, layer, geoms
        points = shapely.point_on_surface(np.asarray(geoms, dtype=object)) if geoms else np.empty(0, object)
        cols, rows = ~grid.affine * (shapely.get_x(points), shapely.get_y(points)) if len(points) else ([], [])
        self.rows = np.floor(np.asarray(rows, dtype=float)).astype(np.int64)
        self.cols = np.floor(np.asarray(cols, dtype=float)).astype(np.int64)
        self.truth_at_point = np.full(len(geoms), NODATA, dtype=np.int64)

    def sample(self, window: PixelWindow, truth: np.ndarray) -> None:
        inside = (
            (self.rows >= window.row_off)
            & (self.rows < window.row_end)
            & (self.cols >= window.col_off)
            & (self.cols < window.col_end)
        )
        if inside.any():
            self.truth_at_point[inside] = truth[self.rows[inside] - window.row_off, self.cols[inside] - window.col_off]


def _class_of(cid: int, classes: tuple[ClassInfo, ...] | None, where: str) -> ClassInfo:
    if classes is None:
        return ClassInfo(cid, f"class_{cid}")
    found = next((c for c in classes if c.id == cid), None)
    if found is None:
        raise InputError(
            f"{where} holds class_id {cid}, which is not in the prediction's class table "
            f"(ids {sorted(c.id for c in classes)}); check the polygons come from this prediction"
        )
    return found


def read_predicted_layers(
    path: str | os.PathLike[str],
    grid: SceneInfo,
    classes: tuple[ClassInfo, ...] | None,
    notes: list[str],
    *,
    ignore_id: int | None = None,
) -> list[PredictedLayer]:
    """The predicted polygons of ``path`` per class, in the prediction's CRS.

    A layer named after a class (as ``geoseg vectorize`` writes GeoPackages)
    belongs to that class; any other layer is split by its ``class_id`` column
    (as in a single-layer GeoJSON).  The ignore id's class is skipped.
    """
    layers = list_polygon_layers(path, "predicted polygons")
    if not layers:
        raise InputError(f"predicted polygons {str(path)!r} hold no layer with geometries")
    by_name = {c.name.lower(): c for c in classes or ()}
    groups: dict[int, tuple[ClassInfo, list[str], list[Any]]] = {}
    for layer in layers:
        read = read_polygon_layer(
            path, target_crs=grid.crs_wkt, layer=layer if len(layers) > 1 else None, what="predicted polygons"
        )
        notes.extend(read.notes)
        frame = read.frame
        where = f"layer {layer!r} of predicted polygons {str(path)!r}"
        if layer.lower() in by_name:
            parts = [(by_name[layer.lower()], list(frame.geometry))]
        elif "class_id" in frame.columns:
            if frame["class_id"].isna().any():
                raise InputError(f"{where}: {int(frame['class_id'].isna().sum())} features have no class_id")
            ids = frame["class_id"].astype("int64")
            parts = [
                (_class_of(int(cid), classes, where), list(frame.geometry[ids == cid])) for cid in sorted(ids.unique())
            ]
        else:
            known = ", ".join(c.name for c in classes or ())
            raise InputError(
                f"{where} matches no class of the prediction ({known or 'no class table'}); name layers after "
                f"classes (as geoseg vectorize does) or give a class_id column"
            )
        for cls, geoms in parts:
            if cls.id == ignore_id:
                notes.append(f"predicted polygons: {where} holds the ignore id's class, which was skipped")
                continue
            _, names, kept = groups.setdefault(cls.id, (cls, [], []))
            names.append(layer)
            kept.extend(geoms)
    return [PredictedLayer(cls, ", ".join(names), geoms, grid) for cls, names, geoms in groups.values()]


def polygon_metrics(
    polygon_classes: list[PredictedLayer],
    truth_polygons: Any,
    *,
    ignore_id: int | None,
    threshold: float,
    notes: list[str],
) -> dict[str, Any]:
    """Per-class TP, FP, FN, precision, recall and F1; ``truth_polygons(class_id)`` gives the truth polygons."""
    rows = []
    for pc in polygon_classes:
        cid = pc.cls.id
        truth_polys = truth_polygons(cid)
        result = match_polygons(truth_polys, pc.geoms, iou_threshold=threshold)
        matched = {p for _, p, _ in result.pairs}
        no_truth = {NODATA} | ({ignore_id} if ignore_id is not None else set())
        left_out = [k for k in range(len(pc.geoms)) if k not in matched and int(pc.truth_at_point[k]) in no_truth]
        fp = result.fp - len(left_out)
        if left_out:
            notes.append(
                f"{pc.cls.name}: {len(left_out)} unmatched predicted polygons lie where there is no truth label "
                f"(nodata or ignore id at their representative point) and are not counted as false positives"
            )
        den_p, den_r, den_f = result.tp + fp, result.tp + result.fn, 2 * result.tp + fp + result.fn
        rows.append(
            {
                "id": cid,
                "name": pc.cls.name,
                "layer": pc.layer,
                "truth_polygons": len(truth_polys),
                "predicted_polygons": len(pc.geoms),
                "left_out": len(left_out),
                "tp": result.tp,
                "fp": fp,
                "fn": result.fn,
                "precision": result.tp / den_p if den_p else None,
                "recall": result.tp / den_r if den_r else None,
                "f1": 2 * result.tp / den_f if den_f else None,
            }
        )
    return {"iou_threshold": threshold, "classes": rows}
