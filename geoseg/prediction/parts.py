"""Models with part classes: the class map people read, and the part sidecar vectorize splits buildings with.

A model trained with ``parts`` (:mod:`geoseg.training.targets`) predicts each
building as a body ringed by border pixels, with contact pixels where two
buildings touch.  Prediction keeps the map plain and moves the parts aside:

* :func:`concentrate` (on the device, per tile, before blending): the
  probabilities of a building's body, border and contact are added and given
  to the most likely of the three.  Blending and the arg-max then decide
  building against background on the building's whole probability, and the
  confidence is that probability;
* :func:`display_lut` folds border and contact ids into the building id for
  the land-cover COG, whose class table lists the display classes only and
  whose :data:`~geoseg.classes.PARTS_TAG` tag records the part table;
* the unfolded ids go to the sidecar ``<out stem>.parts.tif``
  (:func:`~geoseg.classes.part_sidecar_path`) on the same grid, read by
  ``geoseg vectorize`` (:mod:`geoseg.vectorization.split`).

Models without parts are untouched by every function here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..classes import (
    CLASSES_TAG,
    NODATA,
    PARTS_TAG,
    VECTORIZE_TAG,
    classes_to_json,
    part_sidecar_path,
    parts_to_json,
    vectorize_settings_to_json,
)

if TYPE_CHECKING:
    import torch

    from ..model.card import ModelCard

__all__ = ["concentrate", "display_lut", "display_tags", "sidecar_for", "sidecar_meta"]


def _channels(card: ModelCard) -> list[list[int]]:
    """Output channel numbers of (body, border, contact) of each part scheme."""
    position = {cid: i for i, cid in enumerate(card.class_ids)}
    return [[position[p.of], position[p.border], position[p.contact]] for p in card.parts]


def concentrate(probs: torch.Tensor, card: ModelCard) -> torch.Tensor:
    """Softmax probabilities ``(N, C, H, W)`` with each object's part probabilities summed onto its likeliest part.

    In place; returns ``probs``.  A no-op for models without parts.
    """
    for idx in _channels(card):
        sub = probs[:, idx]
        total = sub.sum(dim=1, keepdim=True)
        top = sub.argmax(dim=1, keepdim=True)
        probs[:, idx] = sub.zero_().scatter_(1, top, total)
    return probs


def display_lut(card: ModelCard) -> np.ndarray | None:
    """uint8 lookup from written class ids to the ids people see (border, contact -> building); None without parts."""
    if not card.parts:
        return None
    lut = np.arange(256, dtype=np.uint8)
    for cid in card.class_ids:
        lut[cid] = card.display_id(cid)
    lut[NODATA] = NODATA
    return lut


def display_tags(card: ModelCard) -> dict[str, str]:
    """Tags of the land-cover COG: the display classes, the part table when the model has parts, and the vectorize
    settings the model recommends."""
    tags = {CLASSES_TAG: classes_to_json(card.display_classes)}
    if card.parts:
        tags[PARTS_TAG] = parts_to_json(card.parts)
    if card.vectorize:
        tags[VECTORIZE_TAG] = vectorize_settings_to_json(card.vectorize)
    return tags


def sidecar_for(
    card: ModelCard, out: str | os.PathLike[str], parts: str | os.PathLike[str] | bool = True
) -> Path | None:
    """Where the part sidecar of ``out`` goes: ``parts`` if a path, else beside ``out``; None without parts or False."""
    if not card.parts or parts is False:
        return None
    return part_sidecar_path(out) if parts is True else Path(parts)


def sidecar_meta(card: ModelCard) -> dict[str, Any]:
    """Raster metadata of the part sidecar: every class of the network, colours, the part table."""
    from .write import class_colormap

    return dict(
        nodata=NODATA, colormap=class_colormap(card.classes), description="class id with parts",
        tags={CLASSES_TAG: classes_to_json(card.classes), PARTS_TAG: parts_to_json(card.parts)},
    )
