"""Confusion matrices and per-class pixel scores (IoU, precision, recall, F1). Pure numpy/torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .pixel_metrics import class_metrics

__all__ = ["class_scores", "confusion_matrix", "mean_iou"]


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

    The figures are :func:`geoseg.pixel_metrics.class_metrics`, the same ones ``geoseg evaluate`` reports.
    """
    rows = class_metrics(np.asarray(cm), list(range(len(names))), list(names), ignore_id=None)
    return {
        r["name"]: {"iou": r["iou"], "precision": r["precision"], "recall": r["recall"], "f1": r["f1"], "support": r["truth_pixels"]}
        for r in rows
    }


def mean_iou(scores: dict[str, dict[str, float | int | None]]) -> float:
    """Mean IoU over the classes where it is defined (present in labels or predictions); NaN if none."""
    values = [s["iou"] for s in scores.values() if s["iou"] is not None]
    return float(np.mean(values)) if values else math.nan
