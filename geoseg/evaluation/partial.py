"""Evaluating a class that is labelled only inside some areas (vehicles outlined in crops).

Truth is a GeoPackage with three layers (as in ``../shared/data/vehicles``):

* ``vehicles`` (or ``objects_layer``): the objects, several pieces of one
  object joined by ``vehicle_uid`` when the column exists;
* ``labelled_areas``: where every object was outlined; only here is a
  prediction right or wrong;
* ``uncertain``: regions nobody could decide (motorbikes, hidden parts),
  left out of every figure.

Figures, only inside the labelled areas:

* pixel IoU, precision and recall of the class (every class of the
  prediction's table named ``<class>``, ``<class>_border`` or
  ``<class>_contact`` counts as the class), over the areas' pixels outside
  the uncertain regions;
* polygon precision, recall and F1 at each IoU threshold (0.5, and 0.3,
  kinder to small objects whose outline is a few pixels off).  A predicted
  polygon takes part when its representative point lies in a labelled area
  and less than half of it lies in uncertain regions; it is clipped to the
  labelled areas before its IoU is computed, because the truth stops at their
  edge too.  Matching is one to one, best IoU first
  (:func:`geoseg.evaluation.matching.match_polygons`);
* counts per area: objects labelled (truth whose representative point lies in
  it) against objects found (predictions that take part), and their difference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, check_writable
from ..classes import CLASSES_TAG, NODATA, classes_from_json
from ..errors import InputError, LabelError
from .matching import check_iou_threshold, match_polygons

__all__ = ["PARTIAL_THRESHOLDS", "evaluate_partial"]

#: IoU thresholds reported by default: the usual 0.5, and 0.3 for small objects.
PARTIAL_THRESHOLDS = (0.5, 0.3)


def _class_ids(prediction: str, class_name: str) -> list[int]:
    from ..io.rasters import open_raster

    with open_raster(prediction) as ds:
        tag = ds.tags().get(CLASSES_TAG)
    if not tag:
        raise InputError(
            f"prediction {prediction!r} has no {CLASSES_TAG} class table; cannot find class {class_name!r}"
        )
    names = {class_name, f"{class_name}_border", f"{class_name}_contact"}
    ids = [c.id for c in classes_from_json(tag) if c.name.lower() in names]
    if not ids:
        raise InputError(f"prediction {prediction!r} has no class {class_name!r} in its class table")
    return ids


def _read(path: Path, layer: str, crs_wkt: str, *, required: bool) -> Any:
    import pyogrio

    from ..io.vectors import read_polygon_layer

    layers = [name for name, _ in pyogrio.list_layers(path)]
    if layer not in layers:
        if required:
            raise LabelError(f"truth {str(path)!r} has no layer {layer!r} (layers: {', '.join(layers)})")
        return None
    return read_polygon_layer(path, target_crs=crs_wkt, layer=layer, what="truth", error=LabelError).frame


def _pred_layer(path: Path, class_name: str, crs_wkt: str) -> np.ndarray:
    import pyogrio

    from ..io.vectors import read_polygon_layer

    layers = [name for name, _ in pyogrio.list_layers(path)]
    if class_name in layers:
        frame = read_polygon_layer(path, target_crs=crs_wkt, layer=class_name, what="predicted polygons").frame
    elif len(layers) == 1:
        frame = read_polygon_layer(path, target_crs=crs_wkt, layer=layers[0], what="predicted polygons").frame
        if "class_name" not in frame.columns:
            raise InputError(f"predicted polygons {str(path)!r}: no {class_name!r} layer and no class_name column")
        frame = frame[frame["class_name"].str.lower() == class_name]
    else:
        raise InputError(f"predicted polygons {str(path)!r} have no {class_name!r} layer (layers: {', '.join(layers)})")
    return frame.geometry.to_numpy()


def _pixels(prediction: str, ids: list[int], regions: Any, truth: np.ndarray, uncertain: Any) -> list[dict[str, int]]:
    """Per region: true positive, false positive and false negative pixels, read window by window."""
    import shapely
    from rasterio.features import rasterize
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import transform as window_transform

    from ..io.rasters import open_raster

    out = []
    with open_raster(prediction) as ds:
        for region in regions:
            win = from_bounds(*shapely.bounds(region), transform=ds.transform)
            win = win.round_offsets().round_lengths().intersection(Window(0, 0, ds.width, ds.height))
            pred = ds.read(1, window=win)
            wt = window_transform(win, ds.transform)
            shape = pred.shape

            def burn(geoms: Any, _wt: Any = wt, _shape: tuple = shape) -> np.ndarray:
                geoms = [g for g in geoms if g is not None and not g.is_empty]
                if not geoms:
                    return np.zeros(_shape, dtype=bool)
                return rasterize(((g, 1) for g in geoms), out_shape=_shape, transform=_wt, fill=0, dtype="uint8") > 0

            scored = burn([region]) & (pred != NODATA)
            if uncertain is not None and len(uncertain):
                scored &= ~burn(uncertain)
            is_truth = burn(truth)
            is_pred = np.isin(pred, ids)
            out.append({
                "tp": int((scored & is_truth & is_pred).sum()),
                "fp": int((scored & ~is_truth & is_pred).sum()),
                "fn": int((scored & is_truth & ~is_pred).sum()),
                "scored": int(scored.sum()),
            })
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _scores(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {"tp": tp, "fp": fp, "fn": fn, "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def evaluate_partial(
    prediction: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    pred_vectors: str | os.PathLike[str],
    *,
    class_name: str = "vehicle",
    thresholds: tuple[float, ...] = PARTIAL_THRESHOLDS,
    objects_layer: str = "vehicles",
    areas_layer: str = "labelled_areas",
    uncertain_layer: str = "uncertain",
    area_column: str = "crop_id",
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score ``class_name`` in a class raster and its polygons against truth labelled only in some areas.

    ``prediction``: the class raster (``geoseg predict``); ``pred_vectors``: the
    polygons (``geoseg vectorize``; layer ``class_name``).  Returns the figures
    (module docstring); with ``out``, also writes them there as JSON.
    """
    import shapely

    from ..io.rasters import inspect_scene

    thresholds = tuple(check_iou_threshold(t) for t in thresholds)
    if out is not None:
        out = check_writable(out, overwrite=overwrite)
    grid = inspect_scene(prediction)
    class_name = class_name.lower()
    ids = _class_ids(grid.path, class_name)
    truth = Path(truth)
    objects = _read(truth, objects_layer, grid.crs_wkt, required=True)
    areas = _read(truth, areas_layer, grid.crs_wkt, required=True)
    uncertain = _read(truth, uncertain_layer, grid.crs_wkt, required=False)
    if not len(areas):
        raise LabelError(
            f"truth {str(truth)!r}: layer {areas_layer!r} is empty; nothing says where labels are complete"
        )
    if "vehicle_uid" in objects.columns and len(objects):
        objects = objects.dissolve(by="vehicle_uid", as_index=False)
    region = shapely.union_all(areas.geometry.to_numpy())
    truth_geoms = shapely.intersection(objects.geometry.to_numpy(), region)
    truth_geoms = truth_geoms[~shapely.is_empty(truth_geoms)]
    unc = None if uncertain is None else uncertain.geometry.to_numpy()
    unc_union = shapely.union_all(unc) if unc is not None and len(unc) else None

    predicted = _pred_layer(Path(pred_vectors), class_name, grid.crs_wkt)
    points = shapely.point_on_surface(predicted) if len(predicted) else np.zeros(0, dtype=object)
    inside = shapely.contains(region, points) if len(predicted) else np.zeros(0, dtype=bool)
    if unc_union is not None and len(predicted):
        in_unc = shapely.area(shapely.intersection(predicted, unc_union)) / np.maximum(shapely.area(predicted), 1e-12)
        left_out_uncertain = inside & (in_unc >= 0.5)
    else:
        left_out_uncertain = np.zeros(len(predicted), dtype=bool)
    taking_part = inside & ~left_out_uncertain
    pred_geoms = shapely.intersection(predicted[taking_part], region)

    polygons = {}
    matches = {}
    for t in thresholds:
        result = match_polygons(truth_geoms, pred_geoms, iou_threshold=t)
        polygons[f"{t:g}"] = _scores(result.tp, result.fp, result.fn)
        matches[t] = result

    # Per labelled area: counts, matches and pixels.
    truth_points = shapely.point_on_surface(truth_geoms) if len(truth_geoms) else np.zeros(0, dtype=object)
    pred_points = points[taking_part]
    pixel_rows = _pixels(grid.path, ids, areas.geometry.to_numpy(), truth_geoms, unc)
    rows = []
    for k, (geom, px) in enumerate(zip(areas.geometry.to_numpy(), pixel_rows, strict=True)):
        t_in = shapely.contains(geom, truth_points) if len(truth_points) else np.zeros(0, dtype=bool)
        p_in = shapely.contains(geom, pred_points) if len(pred_points) else np.zeros(0, dtype=bool)
        row: dict[str, Any] = {
            "area": str(areas[area_column].iloc[k]) if area_column in areas.columns else str(k),
            "labelled": int(t_in.sum()),
            "found": int(p_in.sum()),
            "count_error": int(p_in.sum()) - int(t_in.sum()),
        }
        for t in thresholds:
            row[f"tp_iou{t:g}"] = sum(1 for ti, _, _ in matches[t].pairs if t_in[ti])
        row["pixel_iou"] = _ratio(px["tp"], px["tp"] + px["fp"] + px["fn"])
        rows.append(row)
    tp, fp, fn = (sum(p[key] for p in pixel_rows) for key in ("tp", "fp", "fn"))
    errors = np.array([r["count_error"] for r in rows], dtype=float)
    metrics = {
        "class": class_name,
        "class_ids": ids,
        "prediction": grid.path,
        "truth": str(truth.resolve()),
        "pred_vectors": str(Path(pred_vectors).resolve()),
        "labelled_areas": len(areas),
        "truth_objects": len(truth_geoms),
        "predicted_polygons": len(predicted),
        "predicted_in_areas": int(taking_part.sum()),
        "left_out_uncertain": int(left_out_uncertain.sum()),
        "left_out_outside_areas": int((~inside).sum()),
        "pixels": {**_scores(tp, fp, fn), "iou": _ratio(tp, tp + fp + fn),
                   "scored": sum(p["scored"] for p in pixel_rows)},
        "polygons": polygons,
        "counts": {"labelled": int(sum(r["labelled"] for r in rows)), "found": int(sum(r["found"] for r in rows)),
                   "mean_abs_error_per_area": float(np.abs(errors).mean()) if len(errors) else None},
        "areas": rows,
    }
    if out is not None:
        with atomic_path(out, overwrite=overwrite) as tmp:
            Path(tmp).write_text(json.dumps(metrics, indent=1))
    return metrics
