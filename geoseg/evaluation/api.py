"""``geoseg.evaluate``: a land-cover prediction against truth labels, with a report people can look at.

One pass over the prediction's block windows reads each window of the
prediction and of the truth (raster or polygons, on any grid or CRS, brought
onto the prediction's grid), adds the window's confusion counts, and, for the
classes given as predicted polygons, polygonises a raster truth with
vectorize's own tracing (:mod:`geoseg.evaluation.tracing`).  Memory holds
one window, the 256 x 256 counts and the polygons.

Figures (see :mod:`geoseg.pixel_metrics` for the conventions): confusion
matrix (rows truth, columns prediction, over the class table's ids); per-class
IoU, precision, recall and F1; mean IoU, pixel accuracy and mean pixel accuracy
(the mean of per-class recall).  Pixels without prediction or truth, and
pixels whose truth is the ignore id, are left out.  A class absent from both
truth and prediction has null figures and is left out of the means.  For each
layer of ``pred_vectors``, predicted polygons are matched one to one with the
truth polygons of that class (:mod:`geoseg.matching`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..atomic import check_folder_writable
from ..classes import CLASSES_TAG, NODATA, ClassInfo
from ..errors import ConfigError, InputError, LabelError, OutputExistsError
from ..io.class_rasters import ClassRaster, inspect_class_raster, read_class_window
from ..io.rasters import check_input_path, open_raster
from ..metrics import class_metrics, confusion_counts, reduce_confusion, summary_metrics, unknown_values
from ..tiling import PixelWindow
from ..version import __version__
from .matching import check_iou_threshold
from .options import EvaluateOptions
from .polygons import PredictedLayer, polygon_metrics, read_predicted_layers
from .tracing import TracedTruth
from .truth import RasterTruth, VectorTruth, open_truth

__all__ = ["SMALL_CLASS_SHARE", "evaluate"]

log = logging.getLogger(__name__)

#: Classes with less than this share of the evaluated truth pixels are called small in the report.
SMALL_CLASS_SHARE = 0.10
#: GDAL block cache while evaluating, in bytes: reads stream window by window, so a small cache suffices.
READ_CACHE_BYTES = 64 * 2**20
_FALLBACK_COLOURS = [
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (128, 128, 0),
    (0, 128, 128),
    (170, 110, 40),
]


def _check_report_folder(out: str | os.PathLike[str], overwrite: bool) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{str(folder)!r} exists and is not a folder; give a folder for the report (--out)")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"report folder {str(folder)!r} is not empty; pass --overwrite (overwrite=True) to replace the report "
            f"files in it, or choose another --out"
        )
    return check_folder_writable(folder)


def _inspect_prediction(
    path: str | os.PathLike[str],
) -> tuple[ClassRaster, tuple[ClassInfo, ...] | None, dict[int, tuple]]:
    grid = inspect_class_raster(path, what="prediction")
    if grid.dtype != "uint8":
        raise InputError(
            f"prediction {str(path)!r} holds {grid.dtype} values; give a class raster "
            f"written by geoseg predict (one uint8 band of class ids)"
        )
    return grid, grid.scheme, dict(grid.colormap)


def _stream(
    prediction: str | os.PathLike[str],
    truth: RasterTruth | VectorTruth,
    *,
    allowed_truth: set[int] | None,
    allowed_prediction: set[int] | None,
    polygon_classes: list[PredictedLayer],
    trace_classes: list[int],
    grid: ClassRaster,
    progress: bool,
) -> tuple[np.ndarray, TracedTruth | None]:
    """One pass over the prediction's block windows: 256 x 256 counts (and truth polygons, sampled points)."""
    from tqdm.auto import tqdm

    counts = np.zeros((256, 256), dtype=np.int64)
    with open_raster(prediction) as ds:
        windows = [
            PixelWindow(int(w.row_off), int(w.col_off), int(w.height), int(w.width)) for _, w in ds.block_windows(1)
        ]
        shapes = TracedTruth(trace_classes, grid, windows) if trace_classes else None
        for window in tqdm(windows, desc="evaluate", unit="window", disable=not progress):
            pred = read_class_window(prediction, window, dataset=ds, dtype=np.uint8, what="prediction")
            tru = truth.read(window)
            window_counts = confusion_counts(tru, pred)
            where = f"in rows {window.row_off}:{window.row_end}, cols {window.col_off}:{window.col_end}"
            if allowed_truth is not None:
                bad = unknown_values(window_counts, sorted(allowed_truth), axis=0)
                if bad:
                    raise LabelError(
                        f"truth holds class ids {bad} {where} that are not in the prediction's class table "
                        f"(ids {sorted(allowed_truth - {NODATA})}); pass --ignore-id if one marks unlabelled pixels, "
                        f"or fix the labels"
                    )
            if allowed_prediction is not None:
                bad = unknown_values(window_counts, sorted(allowed_prediction), axis=1)
                if bad:
                    raise InputError(f"prediction holds ids {bad} {where} that its {CLASSES_TAG} class table lacks")
            counts += window_counts
            if shapes is not None:
                shapes.add(window, tru)
            for pc in polygon_classes:
                pc.sample(window, tru)
    return counts, shapes


def _fallback_classes(counts: np.ndarray, ignore_id: int | None, colormap: dict[int, tuple]) -> tuple[ClassInfo, ...]:
    truth_ids = set(np.flatnonzero(counts.sum(axis=1)).tolist()) - {NODATA, ignore_id}
    pred_ids = set(np.flatnonzero(counts.sum(axis=0)).tolist()) - {NODATA}
    ids = sorted(truth_ids | pred_ids)
    return tuple(
        ClassInfo(int(i), f"class_{i}", colormap.get(int(i), _FALLBACK_COLOURS[int(i) % len(_FALLBACK_COLOURS)]))
        for i in ids
    )


def _background_id(classes: tuple[ClassInfo, ...], ignore_id: int | None) -> int | None:
    named = [c.id for c in classes if c.name.lower() == "background" and c.id != ignore_id]
    if named:
        return named[0]
    return 0 if any(c.id == 0 for c in classes) and ignore_id != 0 else None


def evaluate(
    prediction: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    pred_vectors: str | os.PathLike[str] | None = None,
    image: str | os.PathLike[str] | None = None,
    ignore_id: int | None = EvaluateOptions.ignore_id,
    iou_threshold: float = EvaluateOptions.iou_threshold,
    class_column: str = EvaluateOptions.class_column,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a class raster against truth; write a report folder if ``out`` is given.

    ``truth`` is a GeoTIFF of class ids (any grid and CRS; warped onto the
    prediction's grid with nearest neighbour) or polygons with ``class_column``
    (any CRS; reprojected and rasterised onto the prediction's grid, 0 where
    no polygon).  ``pred_vectors`` is a GeoPackage with one layer per class
    (layer name = class name), as ``geoseg vectorize`` writes.  Returns the
    content of metrics.json.  With ``out=None`` nothing is written.
    """
    threshold = check_iou_threshold(iou_threshold)
    if ignore_id is not None and (
        isinstance(ignore_id, bool) or not isinstance(ignore_id, (int, np.integer)) or not 0 <= ignore_id < NODATA
    ):
        raise ConfigError(f"ignore id {ignore_id!r} must be an integer in 0..{NODATA - 1} ({NODATA} is already nodata)")
    ignore_id = None if ignore_id is None else int(ignore_id)
    folder = _check_report_folder(out, overwrite) if out is not None else None
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES):
        return _evaluate(
            prediction,
            truth,
            folder,
            pred_vectors=pred_vectors,
            image=image,
            ignore_id=ignore_id,
            threshold=threshold,
            class_column=class_column,
            overwrite=overwrite,
            progress=progress,
        )


def _evaluate(
    prediction: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    folder: Path | None,
    *,
    pred_vectors: str | os.PathLike[str] | None,
    image: str | os.PathLike[str] | None,
    ignore_id: int | None,
    threshold: float,
    class_column: str,
    overwrite: bool,
    progress: bool,
) -> dict[str, Any]:
    grid, classes, colormap = _inspect_prediction(prediction)
    if image is not None:
        check_input_path(image, "image")
    notes: list[str] = []
    if classes is None:
        notes.append(f"the prediction has no {CLASSES_TAG} class table: classes are the ids found, named class_<id>")
    background = 0
    if classes is not None and not any(c.id == 0 for c in classes) and ignore_id != 0:
        background = NODATA
    polygon_classes = (
        read_predicted_layers(pred_vectors, grid, classes, notes, ignore_id=ignore_id)
        if pred_vectors is not None
        else []
    )
    source = open_truth(truth, grid, class_column=class_column, background=background)
    try:
        notes.extend(source.notes)
        if isinstance(source, VectorTruth) and background == NODATA:
            notes.append("class 0 is not in the class table: pixels outside the truth polygons are left out")
        allowed_truth = allowed_prediction = None
        if classes is not None:
            allowed_prediction = {c.id for c in classes} | {NODATA}
            allowed_truth = allowed_prediction | ({ignore_id} if ignore_id is not None else set())
            if isinstance(source, VectorTruth):
                unknown = sorted(set(source.class_counts()) - allowed_truth)
                if unknown:
                    raise LabelError(
                        f"truth {str(truth)!r} holds class ids {unknown} that are not in the prediction's class table "
                        f"(ids {sorted(c.id for c in classes)}); pass --ignore-id if one marks unlabelled areas, "
                        f"or fix the labels"
                    )
        trace_classes = []
        if isinstance(source, RasterTruth) and polygon_classes:
            trace_classes = [pc.cls.id for pc in polygon_classes]
            notes.append(
                "truth polygons were traced from the truth raster on the prediction grid as geoseg vectorize traces "
                "predictions (4-connected, without filters)"
            )
        counts, shapes = _stream(
            prediction,
            source,
            allowed_truth=allowed_truth,
            allowed_prediction=allowed_prediction,
            polygon_classes=polygon_classes,
            trace_classes=trace_classes,
            grid=grid,
            progress=progress,
        )
        if classes is None:
            classes = _fallback_classes(counts, ignore_id, colormap)
        reduced = reduce_confusion(counts, [c.id for c in classes], ignore_id=ignore_id)
        if reduced.evaluated == 0:
            raise LabelError(
                f"no pixel has both a prediction and a truth label (truth nodata {reduced.truth_nodata}, ignored "
                f"{reduced.ignored}, prediction nodata {reduced.prediction_nodata}); "
                f"check the truth covers the prediction"
            )
        per_class = class_metrics(reduced.matrix, reduced.ids, [c.name for c in classes], ignore_id=ignore_id)
        metrics = _assemble(
            prediction,
            truth,
            pred_vectors,
            image,
            source,
            classes,
            reduced,
            per_class,
            ignore_id=ignore_id,
            threshold=threshold,
            total=int(counts.sum()),
            notes=notes,
        )
        if polygon_classes:
            # A raster truth is traced for every polygon class, so ``shapes`` is set here.
            truth_polygons = source.polygons if isinstance(source, VectorTruth) else cast(TracedTruth, shapes).polygons
            metrics["polygon_metrics"] = polygon_metrics(
                polygon_classes, truth_polygons, ignore_id=ignore_id, threshold=threshold, notes=notes
            )
        else:
            metrics["polygon_metrics"] = None
            small = [
                c["name"]
                for c in per_class
                if c["status"] == "evaluated" and 0 < c["truth_pixels"] < SMALL_CLASS_SHARE * reduced.evaluated
            ]
            tail = (
                f"; small classes ({', '.join(small)}) are better judged by polygon F1: run geoseg vectorize and pass "
                f"--pred-vectors"
                if small
                else ""
            )
            notes.append(f"polygon metrics not computed: no predicted polygons given (--pred-vectors){tail}")
        log.info("mean IoU %s over %d evaluated pixels", metrics["mean_iou"], reduced.evaluated)
        if folder is not None:
            from .report.folder import write_report

            write_report(
                folder,
                metrics,
                prediction=prediction,
                truth=source,
                image=image,
                classes=classes,
                grid=grid,
                ignore_id=ignore_id,
                background_id=_background_id(classes, ignore_id),
                overwrite=overwrite,
            )
        return metrics
    finally:
        source.close()


def _assemble(
    prediction: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    pred_vectors: str | os.PathLike[str] | None,
    image: str | os.PathLike[str] | None,
    source: RasterTruth | VectorTruth,
    classes: tuple[ClassInfo, ...],
    reduced: Any,
    per_class: list[dict[str, Any]],
    *,
    ignore_id: int | None,
    threshold: float,
    total: int,
    notes: list[str],
) -> dict[str, Any]:
    summary = summary_metrics(reduced.matrix, per_class)
    absent = [c["name"] for c in per_class if c["status"] == "absent"]
    if absent:
        notes.append(
            "classes absent from truth and prediction have null figures and are left out of the means: "
            + ", ".join(absent)
        )
    if ignore_id is not None:
        notes.append(f"ignore id {ignore_id}: {reduced.ignored} truth pixels left out")
    return {
        "geoseg_version": __version__,
        "inputs": {
            "prediction": str(Path(prediction).resolve()),
            "truth": str(Path(truth).resolve()),
            "pred_vectors": None if pred_vectors is None else str(Path(pred_vectors).resolve()),
            "image": None if image is None else str(Path(image).resolve()),
        },
        "truth": {
            "kind": source.kind,
            "reprojected_from": source.reprojected_from,
            "resampled": bool(source.resampled),
        },
        "ignore_id": ignore_id,
        "iou_threshold": threshold,
        "classes": [c.to_dict() for c in classes],
        "confusion_matrix": {
            "ids": list(reduced.ids),
            "names": [c.name for c in classes],
            "matrix": reduced.matrix.astype(int).tolist(),
        },
        "per_class": per_class,
        **summary,
        "pixels": {
            "total": total,
            "evaluated": reduced.evaluated,
            "truth_nodata": reduced.truth_nodata,
            "ignored": reduced.ignored,
            "prediction_nodata": reduced.prediction_nodata,
        },
        "notes": notes,
    }
