"""Segmentation losses that honour an ignore index: partial cross-entropy, focal, Dice, Tversky, sums.

Every loss takes logits ``(N, C, H, W)`` and a target ``(N, H, W)`` of output
channels, where :data:`IGNORE_INDEX` marks pixels without a label (sparse
labels, image nodata); those pixels add nothing to any loss.  A batch without
a single labelled pixel gives a loss of 0 (with a gradient graph), not NaN.

Definitions (``p`` softmax probabilities, ``y`` one-hot targets, sums over
labelled pixels only):

* cross-entropy: ``sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]``;
* focal: ``sum_i w[y_i] * (1 - p_i[y_i]) ** gamma * -log p_i[y_i] / sum_i w[y_i]``;
* Dice: ``1 - mean_c (2 TP_c + s) / (sum p_c + sum y_c + s)``;
* Tversky: ``1 - mean_c (TP_c + s) / (TP_c + alpha FP_c + beta FN_c + s)``;

with the means over the classes present in the batch's labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IGNORE_INDEX", "CrossEntropyLoss", "DiceLoss", "FocalLoss", "TverskyLoss", "WeightedSum",
    "inverse_frequency_weights",
]

#: Target value of pixels without a label (torch's convention).
IGNORE_INDEX = -100


def _weights(weight: Sequence[float] | Tensor | None) -> Tensor | None:
    return None if weight is None else torch.as_tensor(weight, dtype=torch.float32)


def _zero(logits: Tensor) -> Tensor:
    return logits.sum() * 0.0


class CrossEntropyLoss(nn.Module):
    """Partial (ignore-aware), optionally class-weighted cross-entropy."""

    weight: Tensor | None  # a buffer, moved with the module

    def __init__(self, weight: Sequence[float] | Tensor | None = None, *, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.register_buffer("weight", _weights(weight))
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if not (target != self.ignore_index).any():
            return _zero(logits)
        return F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy down-weighted by ``(1 - p_t) ** gamma``."""

    weight: Tensor | None  # a buffer, moved with the module

    def __init__(
        self, gamma: float = 2.0, weight: Sequence[float] | Tensor | None = None, *, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", _weights(weight))
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        labelled = target != self.ignore_index
        if not labelled.any():
            return _zero(logits)
        logp = F.log_softmax(logits.float(), dim=1)
        safe = torch.where(labelled, target, 0)
        logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)[labelled]
        p_t = logp_t.exp()
        w = self.weight[safe[labelled]] if self.weight is not None else torch.ones_like(logp_t)
        return (w * (1 - p_t).pow(self.gamma) * -logp_t).sum() / w.sum()


def _soft_counts(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Per class over labelled pixels: soft TP, FP, FN, and the label count."""
    labelled = target != ignore_index
    if not labelled.any():
        return None
    n_classes = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1).movedim(1, -1)[labelled]  # (P, C)
    onehot = F.one_hot(target[labelled], n_classes).to(probs.dtype)
    tp = (probs * onehot).sum(0)
    fp = (probs * (1 - onehot)).sum(0)
    fn = ((1 - probs) * onehot).sum(0)
    return tp, fp, fn, onehot.sum(0)


class TverskyLoss(nn.Module):
    """Tversky loss: ``alpha`` weighs false positives, ``beta`` false negatives; 0.5/0.5 is Dice."""

    def __init__(
        self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, *, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        counts = _soft_counts(logits, target, self.ignore_index)
        if counts is None:
            return _zero(logits)
        tp, fp, fn, support = counts
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return 1 - index[support > 0].mean()


class DiceLoss(TverskyLoss):
    """Soft Dice loss over the classes present in the labels.

    ``(2 TP + s) / (sum p + sum y + s)`` equals Tversky with ``alpha = beta = 1/2`` and smoothing ``s / 2``.
    """

    def __init__(self, smooth: float = 1.0, *, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__(0.5, 0.5, smooth / 2, ignore_index=ignore_index)


class WeightedSum(nn.Module):
    """``sum_k weight_k * loss_k``."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("WeightedSum needs at least one loss")
        self.weights = [float(w) for w, _ in terms]
        self.losses = nn.ModuleList([loss for _, loss in terms])

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        total = self.weights[0] * self.losses[0](logits, target)
        for w, loss in zip(self.weights[1:], self.losses[1:], strict=True):
            total = total + w * loss(logits, target)
        return total


def inverse_frequency_weights(counts: Sequence[float], power: float = 1.0) -> list[float]:
    """Class weights ``(1 / freq_c) ** power``, scaled to mean 1 over the classes present.

    Classes absent from ``counts`` get weight 1 (they never occur in targets).
    """
    total = float(sum(counts))
    if total <= 0:
        return [1.0] * len(counts)
    raw = [(total / c) ** power if c > 0 else 0.0 for c in counts]
    present = [r for r in raw if r > 0]
    mean = sum(present) / len(present)
    return [r / mean if r > 0 else 1.0 for r in raw]
