"""Ensembles and test-time augmentation: several models, several views of each tile, one averaged prediction.

An *ensemble* runs every tile through several models and averages their
softmax probabilities with weights that add up to 1 (:func:`ensemble_weights`).
The models must agree on what they read and write (:func:`check_ensemble`):
class ids and names, part schemes, input bands, dtype and nodata policy; each
normalises the tile with its own card's mean and std.

*Test-time augmentation* (:data:`TTA_MODES`) runs each model on transformed
copies of the tile batch (:func:`views`: flips, or the eight symmetries of
the square), turns each view's logits into probabilities, maps them back onto
the tile (:meth:`View.invert`) and averages them.  The averaged probabilities
then go through the same blending and quantisation as a single model's.

Pure Python: views transform tensors through their own methods, so importing
this module imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, UsageError

if TYPE_CHECKING:
    import torch

    from ..model.card import ModelCard

__all__ = ["REFINE_MODES", "TTA_MODES", "View", "check_ensemble", "ensemble_weights", "parse_weights", "views"]

#: ``none``: the tile as it is; ``flips``: identity, horizontal, vertical and both flips (4 views);
#: ``d4``: the 8 symmetries of the square (rotations by 0, 90, 180, 270 degrees, each also mirrored).
TTA_MODES = ("none", "flips", "d4")
#: ``none``: the network's probabilities as they are; ``guided``: each tile's probabilities filtered with the tile
#: as guide (:func:`~.refine.guided_filter`), so class edges follow image edges.
REFINE_MODES = ("none", "guided")


@dataclass(frozen=True)
class View:
    """One transform of a ``(N, C, H, W)`` batch: mirror left-right if ``mirror``, then turn ``quarter_turns`` x 90°
    (counter-clockwise) and flip top-bottom if ``flip_rows``."""

    mirror: bool = False
    flip_rows: bool = False
    quarter_turns: int = 0

    @property
    def identity(self) -> bool:
        return not (self.mirror or self.flip_rows or self.quarter_turns % 4)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as this view sees it."""
        if self.mirror:
            x = x.flip(-1)
        if self.quarter_turns % 4:
            x = x.rot90(self.quarter_turns, (-2, -1))
        if self.flip_rows:
            x = x.flip(-2)
        return x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """Per-pixel outputs ``y`` of the viewed batch, back on the original pixels (undoes :meth:`apply`)."""
        if self.flip_rows:
            y = y.flip(-2)
        if self.quarter_turns % 4:
            y = y.rot90(-self.quarter_turns, (-2, -1))
        if self.mirror:
            y = y.flip(-1)
        return y


def views(mode: str) -> tuple[View, ...]:
    """The views of TTA ``mode`` (see :data:`TTA_MODES`), the identity first."""
    if mode == "none":
        return (View(),)
    if mode == "flips":
        return (View(), View(mirror=True), View(flip_rows=True), View(mirror=True, flip_rows=True))
    if mode == "d4":
        return tuple(View(mirror=m, quarter_turns=k) for m in (False, True) for k in range(4))
    raise UsageError(f"--tta {mode!r} is not one of {', '.join(TTA_MODES)}")


def parse_weights(text: str) -> tuple[float, ...]:
    """``"0.6,0.4"`` -> ``(0.6, 0.4)``; a :class:`~geoseg.errors.UsageError` for anything that is not numbers."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--model-weights {text!r} must be numbers separated by commas, e.g. 0.6,0.4") from None


def ensemble_weights(weights: Sequence[float] | None, count: int) -> tuple[float, ...]:
    """The weights of ``count`` models, scaled to add up to 1 (equal weights if None).

    A :class:`~geoseg.errors.UsageError` if there are not ``count`` of them,
    or if one is negative or not finite, or if they add up to zero.
    """
    if weights is None:
        return (1.0 / count,) * count
    if isinstance(weights, (str, bytes)):
        raise UsageError(f"model weights must be a list of numbers, got {weights!r}")
    values = tuple(weights)
    if len(values) != count:
        raise UsageError(f"{len(values)} model weight(s) for {count} model(s); give one weight per --model")
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in values):
        raise UsageError(f"model weights must be finite numbers, got {list(values)}")
    if any(w < 0 for w in values):
        raise UsageError(f"model weights must not be negative, got {list(values)}")
    total = math.fsum(values)
    if total <= 0:
        raise UsageError(f"model weights add up to zero ({list(values)}); give at least one positive weight")
    return tuple(float(w) / total for w in values)


def _summary(card: ModelCard) -> dict[str, Any]:
    """What models of one ensemble must agree on."""
    return {
        "classes": [(c.id, c.name) for c in card.classes],
        "part schemes": [p.to_dict() for p in card.parts],
        "bands": list(card.bands),
        "dtype": card.dtype,
        "nodata policy": card.nodata,
    }


def check_ensemble(cards: Sequence[ModelCard], names: Sequence[str]) -> None:
    """A one-line :class:`~geoseg.errors.InputError` if the models ``names`` do not read and write alike."""
    first = _summary(cards[0])
    for card, name in zip(cards[1:], names[1:], strict=True):
        other = _summary(card)
        for key, value in first.items():
            if other[key] != value:
                raise InputError(
                    f"models {names[0]!r} and {name!r} cannot be ensembled: their {key} differ "
                    f"({_short(value)} vs {_short(other[key])}); ensemble only models of the same classes and inputs"
                )


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
