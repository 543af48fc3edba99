"""One-to-one matching of predicted and true polygons at an IoU threshold.

The rule is SpaceNet's: every (truth, prediction) pair whose intersection over
union reaches the threshold is a candidate; candidates are taken best IoU
first, and each truth and each prediction is used at most once.  Matched
pairs are true positives, unmatched predictions false positives, unmatched
truths false negatives.  Candidates come from an STRtree, so the work grows
with the number of overlapping pairs, not with the product of the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .options import EvaluateOptions

__all__ = ["IOU_TOLERANCE", "MatchResult", "check_iou_threshold", "match_polygons"]

#: IoU values within this of the threshold count as reaching it (areas are floating point).
IOU_TOLERANCE = 1e-9


def check_iou_threshold(iou_threshold: float) -> float:
    value = float(iou_threshold)
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"IoU threshold {iou_threshold!r} must be in (0, 1]; 0.5 is the usual choice")
    return value


@dataclass(frozen=True)
class MatchResult:
    """Counts of a matching and the matched pairs ``(truth index, prediction index, IoU)``."""

    tp: int
    fp: int
    fn: int
    pairs: tuple[tuple[int, int, float], ...] = ()

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        den = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / den if den else None


def match_polygons(
    truth: Sequence[object], prediction: Sequence[object], *, iou_threshold: float = EvaluateOptions.iou_threshold
) -> MatchResult:
    """Match ``prediction`` polygons to ``truth`` polygons one to one (both in the same CRS).

    Ties in IoU are broken by truth index, then prediction index, so the
    result does not depend on the STRtree's order.
    """
    import shapely

    threshold = check_iou_threshold(iou_threshold)
    truth_arr = np.asarray(list(truth), dtype=object)
    pred_arr = np.asarray(list(prediction), dtype=object)
    if len(truth_arr) == 0 or len(pred_arr) == 0:
        return MatchResult(tp=0, fp=len(pred_arr), fn=len(truth_arr))
    tree = shapely.STRtree(pred_arr)
    ti, pi = tree.query(truth_arr, predicate="intersects")
    if len(ti) == 0:
        return MatchResult(tp=0, fp=len(pred_arr), fn=len(truth_arr))
    inter = shapely.area(shapely.intersection(truth_arr[ti], pred_arr[pi]))
    union = shapely.area(truth_arr[ti]) + shapely.area(pred_arr[pi]) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    keep = iou >= threshold - IOU_TOLERANCE
    ti, pi, iou = ti[keep], pi[keep], iou[keep]
    order = np.lexsort((pi, ti, -iou))
    used_truth: set[int] = set()
    used_pred: set[int] = set()
    pairs = []
    for k in order:
        t, p = int(ti[k]), int(pi[k])
        if t in used_truth or p in used_pred:
            continue
        used_truth.add(t)
        used_pred.add(p)
        pairs.append((t, p, float(iou[k])))
    tp = len(pairs)
    return MatchResult(tp=tp, fp=len(pred_arr) - tp, fn=len(truth_arr) - tp, pairs=tuple(pairs))
