"""Confusion matrices and per-class pixel scores (IoU, precision, recall, F1). Pure numpy/torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

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


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def class_scores(cm: Any, names: Sequence[str]) -> dict[str, dict[str, float | int | None]]:
    """Per class: IoU, precision, recall, F1 (``None`` where undefined) and support (true pixels)."""
    cm = np.asarray(cm, dtype=np.float64)
    out: dict[str, dict[str, float | int | None]] = {}
    for c, name in enumerate(names):
        tp = cm[c, c]
        fp = cm[:, c].sum() - tp
        fn = cm[c, :].sum() - tp
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        out[name] = {
            "iou": _ratio(tp, tp + fp + fn),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(tp + fn),
        }
    return out


def mean_iou(scores: dict[str, dict[str, float | int | None]]) -> float:
    """Mean IoU over the classes where it is defined (present in labels or predictions); NaN if none."""
    values = [s["iou"] for s in scores.values() if s["iou"] is not None]
    return float(np.mean(values)) if values else math.nan
