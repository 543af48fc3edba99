"""The shipped vehicles model: selectable by name, a complete card, under the size limit."""

from __future__ import annotations

import json

import pytest

from geoseg.model.file import SHIPPED_MODELS


def test_vehicles_model_card_is_complete():
    import geoseg

    card = geoseg.read_card("vehicles")
    assert [c.name for c in card.display_classes] == ["background", "building", "vehicle"]
    assert {card.classes[[c.id for c in card.classes].index(p.of)].name for p in card.parts} == {"building", "vehicle"}
    assert card.resolution == pytest.approx(0.15) and card.resolution_range
    meta = card.metadata
    text = json.dumps(meta)
    for needle in ("CC BY 4.0", "OpenStreetMap", "ODbL", "OpenAerialMap"):
        assert needle in text
    folds = {k: v for k, v in meta["validation"].items() if k.startswith("fold-")}
    assert {v["held_out"] for v in folds.values()} >= {"kampala", "banepa_outskirts_c2", "nairobi_c1"}
    for fold in folds.values():
        assert 0 <= fold["polygon_iou0.3"]["f1"] <= 1 and fold["labelled"] > 0
    assert SHIPPED_MODELS["vehicles"].stat().st_size <= 25_000_000


def test_vehicles_model_loads_with_float16_weights_cast_back():
    import torch

    import geoseg

    model = geoseg.load_model("vehicles")
    assert all(p.dtype == torch.float32 for p in model.network.parameters())
    x = torch.zeros((1, len(model.card.bands), 64, 64))
    with torch.no_grad():
        assert model.network(x).shape == (1, model.card.num_classes, 64, 64)
