"""Losses against values worked out by hand on tiny tensors, the ignore index included."""

from __future__ import annotations

import math

import pytest
import torch

from geoseg.training.losses import (
    IGNORE_INDEX,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    TverskyLoss,
    WeightedSum,
    inverse_frequency_weights,
)

LN3 = math.log(3.0)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes, 1x3 pixels.

    pixel 0: logits (0, ln 3) -> p = (1/4, 3/4), label 1
    pixel 1: logits (ln 3, 0) -> p = (3/4, 1/4), label 1
    pixel 2: logits (0, 0)    -> p = (1/2, 1/2), ignored
    """
    logits = torch.tensor([[0.0, LN3, 0.0], [LN3, 0.0, 0.0]]).reshape(1, 2, 1, 3)
    target = torch.tensor([[[1, 1, IGNORE_INDEX]]])
    return logits, target


def test_cross_entropy_ignores_unlabelled_pixels():
    logits, target = batch()
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy_is_a_weighted_mean():
    logits, _ = batch()
    target = torch.tensor([[[1, 0, 0]]])  # pixel 2: p(0) = 1/2
    w = [2.0, 1.0]
    # sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]
    expected = (1 * -math.log(0.75) + 2 * -math.log(0.75) + 2 * -math.log(0.5)) / (1 + 2 + 2)
    assert CrossEntropyLoss(w)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_by_hand():
    logits, target = batch()
    expected = ((0.25**2) * -math.log(0.75) + (0.75**2) * -math.log(0.25)) / 2
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # gamma 0 is cross-entropy
    expected = CrossEntropyLoss()(logits, target).item()
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_focal_loss_by_hand():
    logits, _ = batch()
    target = torch.tensor([[[1, 0, IGNORE_INDEX]]])
    w = [3.0, 1.0]
    # pixel 0: p_t 3/4, w 1; pixel 1: label 0, p_t 3/4, w 3
    expected = (1 * 0.25**2 * -math.log(0.75) + 3 * 0.25**2 * -math.log(0.75)) / 4
    assert FocalLoss(2.0, w)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_dice_loss_by_hand():
    logits, target = batch()
    # Labelled pixels 0 and 1, both class 1.  Class 1: TP = 3/4 + 1/4 = 1, sum p = 1, sum y = 2.
    # Class 0 is absent from the labels, so only class 1 counts.  smooth 1.
    dice1 = (2 * 1 + 1) / (1 + 2 + 1)
    assert DiceLoss(smooth=1.0)(logits, target).item() == pytest.approx(1 - dice1, rel=1e-6)


def test_dice_loss_two_classes_present():
    logits, _ = batch()
    target = torch.tensor([[[1, 0, 0]]])
    # class 0: p0 = (1/4, 3/4, 1/2), y0 = (0, 1, 1): TP = 5/4, sum p = 3/2, sum y = 2
    # class 1: p1 = (3/4, 1/4, 1/2), y1 = (1, 0, 0): TP = 3/4, sum p = 3/2, sum y = 1
    d0 = (2 * 1.25 + 0) / (1.5 + 2)
    d1 = (2 * 0.75 + 0) / (1.5 + 1)
    assert DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-6)


def test_tversky_loss_by_hand():
    logits, target = batch()
    # class 1 over labelled pixels: TP = 1, FP = sum p1 (1 - y1) = 0, FN = sum (1 - p1) y1 = 1/4 + 3/4 = 1
    alpha, beta, s = 0.3, 0.7, 0.0
    index = 1 / (1 + alpha * 0 + beta * 1)
    assert TverskyLoss(alpha, beta, s)(logits, target).item() == pytest.approx(1 - index, rel=1e-6)
    # alpha = beta = 1/2 is Dice (with half the smoothing term)
    expected = DiceLoss(1.0)(logits, target).item()
    assert TverskyLoss(0.5, 0.5, 0.5)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_sum():
    logits, target = batch()
    total = WeightedSum([(1.0, CrossEntropyLoss()), (0.5, DiceLoss())])(logits, target)
    expected = CrossEntropyLoss()(logits, target) + 0.5 * DiceLoss()(logits, target)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), FocalLoss(), DiceLoss(), TverskyLoss(0.3, 0.7)])
def test_all_ignored_gives_zero_with_a_gradient(loss):
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), IGNORE_INDEX)
    value = loss(logits, target)
    assert value.item() == 0.0
    value.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


@pytest.mark.parametrize(
    "loss", [CrossEntropyLoss([1.0, 2.0, 3.0]), FocalLoss(2.0, [1.0, 2.0, 3.0]), DiceLoss(), TverskyLoss(0.3, 0.7)]
)
def test_ignored_pixels_do_not_change_the_loss(loss):
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    target[0, :2] = IGNORE_INDEX
    base = loss(logits, target).item()
    changed = logits.clone()
    changed[0, :, :2] = torch.randn(3, 2, 4) * 10  # whatever the network says where there is no label
    assert loss(changed, target).item() == pytest.approx(base, rel=1e-6)


def test_inverse_frequency_weights():
    assert inverse_frequency_weights([90, 10], power=1.0) == pytest.approx([0.2, 1.8])
    # (1/0.9) ** 0.5 and (1/0.1) ** 0.5, scaled to mean 1
    a, b = (1 / 0.9) ** 0.5, (1 / 0.1) ** 0.5
    assert inverse_frequency_weights([90, 10], power=0.5) == pytest.approx([2 * a / (a + b), 2 * b / (a + b)])
    assert inverse_frequency_weights([50, 0, 50]) == pytest.approx([1.0, 1.0, 1.0])
