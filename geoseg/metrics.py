"""Pixel metrics: confusion matrices and per-class scores, shared by training and evaluation. Pure arrays, no I/O.

Counts are gathered over all 256 uint8 values (:func:`confusion_counts`, one
window at a time, summed by the caller), then reduced to the class table's ids
(:func:`reduce_confusion`) and turned into per-class and mean figures
(:func:`class_metrics`, :func:`summary_metrics`).

Conventions:

- rows are truth, columns are prediction;
- value 255 is nodata on both sides; pixels whose truth is nodata or the
  ignore id, or whose prediction is nodata, are left out of every figure;
- a figure whose denominator is 0 is ``None`` (null in JSON): precision when a
  class is never predicted, recall when it never occurs in the truth, and every
  figure of a class absent from both truth and prediction;
- means (mean IoU, mean pixel accuracy = mean of per-class recall) average the
  figures that are not ``None``; the ignore id's class never counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .classes import NODATA

__all__ = [
    "ReducedConfusion",
    "VALUES",
    "class_metrics",
    "class_scores",
    "confusion_counts",
    "confusion_matrix",
    "mean_iou",
    "reduce_confusion",
    "summary_metrics",
    "unknown_values",
]

#: Number of distinct uint8 values: the full confusion matrix is VALUES x VALUES.
VALUES = 256


def confusion_counts(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Counts of (truth value, predicted value) pairs as a 256 x 256 int64 matrix.

    Both arrays are uint8 of the same shape; no value is excluded here.
    """
    if truth.shape != prediction.shape:
        raise ValueError(f"truth shape {truth.shape} differs from prediction shape {prediction.shape}")
    pairs = (truth.astype(np.int64) << 8) | prediction.astype(np.int64)
    return np.bincount(pairs.ravel(), minlength=VALUES * VALUES).reshape(VALUES, VALUES)


def unknown_values(counts: np.ndarray, allowed: Sequence[int], *, axis: int) -> list[int]:
    """Values that occur along ``axis`` (0: truth rows, 1: prediction columns) but are not allowed."""
    permitted = set(allowed)
    seen = np.flatnonzero(counts.sum(axis=1 - axis))
    return [int(v) for v in seen if int(v) not in permitted]


@dataclass(frozen=True)
class ReducedConfusion:
    """The confusion matrix over ``ids`` and the pixels left out of it, by reason."""

    ids: tuple[int, ...]
    matrix: np.ndarray
    truth_nodata: int
    ignored: int
    prediction_nodata: int

    @property
    def evaluated(self) -> int:
        return int(self.matrix.sum())


def reduce_confusion(counts: np.ndarray, ids: Sequence[int], *, ignore_id: int | None) -> ReducedConfusion:
    """Keep the rows and columns of ``ids``; count what is left out.

    Exclusions are counted in order: truth nodata first, then the ignore id,
    then prediction nodata (a pixel is counted under the first reason only).
    The ignore id's row is emptied; its column stays, because a labelled pixel
    predicted as the ignore id is an error.
    """
    ids = tuple(int(i) for i in ids)
    counts = np.asarray(counts, dtype=np.int64)
    truth_nodata = int(counts[NODATA, :].sum())
    ignored = int(counts[ignore_id, :].sum()) if ignore_id is not None and ignore_id != NODATA else 0
    valid_rows = np.ones(VALUES, bool)
    valid_rows[NODATA] = False
    if ignore_id is not None:
        valid_rows[ignore_id] = False
    prediction_nodata = int(counts[valid_rows, NODATA].sum())
    matrix = counts[np.ix_(ids, ids)].copy()
    if ignore_id is not None and ignore_id in ids:
        matrix[ids.index(ignore_id), :] = 0
    return ReducedConfusion(ids, matrix, truth_nodata, ignored, prediction_nodata)


def _ratio(num: int, den: int) -> float | None:
    return float(num) / float(den) if den > 0 else None


def class_metrics(
    matrix: np.ndarray, ids: Sequence[int], names: Sequence[str], *, ignore_id: int | None
) -> list[dict[str, Any]]:
    """Per-class counts and IoU, precision, recall, F1 (``None`` where undefined).

    ``status`` is ``"evaluated"``, ``"absent"`` (no truth and no predicted
    pixel: every figure ``None``) or ``"ignored"`` (the ignore id).
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    tp_all = np.diag(matrix)
    rows, cols = matrix.sum(axis=1), matrix.sum(axis=0)
    out = []
    for k, (cid, name) in enumerate(zip(ids, names, strict=True)):
        tp, truth_px, pred_px = int(tp_all[k]), int(rows[k]), int(cols[k])
        fp, fn = pred_px - tp, truth_px - tp
        entry: dict[str, Any] = {
            "id": int(cid),
            "name": name,
            "truth_pixels": truth_px,
            "predicted_pixels": pred_px,
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
        if ignore_id is not None and cid == ignore_id:
            entry.update(status="ignored", iou=None, precision=None, recall=None, f1=None)
        elif truth_px == 0 and pred_px == 0:
            entry.update(status="absent", iou=None, precision=None, recall=None, f1=None)
        else:
            entry.update(
                status="evaluated",
                iou=_ratio(tp, tp + fp + fn),
                precision=_ratio(tp, tp + fp),
                recall=_ratio(tp, tp + fn),
                f1=_ratio(2 * tp, 2 * tp + fp + fn),
            )
        out.append(entry)
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(sum(kept) / len(kept)) if kept else None


def summary_metrics(matrix: np.ndarray, per_class: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Mean IoU, pixel accuracy and mean pixel accuracy (mean per-class recall)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    scored = [c for c in per_class if c["status"] == "evaluated"]
    return {
        "mean_iou": _mean([c["iou"] for c in scored]),
        "pixel_accuracy": _ratio(int(np.trace(matrix)), int(matrix.sum())),
        "mean_pixel_accuracy": _mean([c["recall"] for c in scored]),
    }

def confusion_matrix(pred: Any, target: Any, num_classes: int, *, ignore_index: int | None = None) -> Any:
    """``cm[t, p]`` = pixels of true class ``t`` predicted as ``p``; works on numpy arrays and torch tensors.

    Pixels whose target is ``ignore_index`` (or outside ``0..num_classes-1``) are not counted.
    """
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    if isinstance(index, np.ndarray):
        return np.bincount(index.astype(np.int64), minlength=num_classes**2).reshape(num_classes, num_classes)
    import torch

    return torch.bincount(index.long(), minlength=num_classes**2).reshape(num_classes, num_classes)


def class_scores(cm: Any, names: Sequence[str]) -> dict[str, dict[str, float | int | None]]:
    """Per class: IoU, precision, recall, F1 (``None`` where undefined) and support (true pixels).

    The figures are :func:`class_metrics`, the same ones ``geoseg evaluate`` reports.
    """
    rows = class_metrics(np.asarray(cm), list(range(len(names))), list(names), ignore_id=None)
    return {
        r["name"]: {
            "iou": r["iou"], "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
            "support": r["truth_pixels"],
        }
        for r in rows
    }


def mean_iou(scores: dict[str, dict[str, float | int | None]]) -> float:
    """Mean IoU over the classes where it is defined (present in labels or predictions); NaN if none."""
    values = [s["iou"] for s in scores.values() if s["iou"] is not None]
    return float(np.mean(values)) if values else math.nan
