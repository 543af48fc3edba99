"""The vectorize settings a model recommends: carried by its card, written into the class raster by predict, used
by vectorize for each class unless told otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from support.rasters import write_raster
from support.vector_cases import SCHEME, class_raster

import geoseg
from geoseg.classes import VECTORIZE_TAG, vectorize_settings_to_json
from geoseg.errors import InputError, ModelError
from geoseg.model.card import ModelCard
from geoseg.vectorization.api import vectorize

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

PLAIN = dict(simplify=0, fill_holes=0, rectangles=False)


def found(result):
    return {name: n for name, n in result.features.items() if n}


def _objects(tmp_path, recommended):
    """Buildings of 16 and 36 pixels (4 and 9 m² at 0.5 m) and a vehicle of 16 pixels, with ``recommended``."""
    a = np.zeros((20, 30), np.uint8)
    a[1:5, 1:5] = 1
    a[8:14, 8:14] = 1
    a[1:5, 20:24] = 2
    path = class_raster(tmp_path / "objects.tif", a)
    if recommended is not None:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(**{VECTORIZE_TAG: vectorize_settings_to_json(recommended)})
    return path


def test_each_class_gets_the_settings_its_model_recommends(client, tmp_path):
    raster = _objects(tmp_path, {"building": {"min_area": 6.0}})
    result = vectorize(raster, tmp_path / "recommended.gpkg", client=client, **PLAIN)
    assert found(result) == {"building": 1, "vehicle": 1}  # the 4 m² building is under 6; the vehicle keeps 4
    result = vectorize(raster, tmp_path / "told.gpkg", min_area=1.0, client=client, **PLAIN)
    assert found(result) == {"building": 2, "vehicle": 1}  # a number given applies to every class
    result = vectorize(raster, tmp_path / "strict.gpkg", min_area=10.0, client=client, **PLAIN)
    assert found(result) == {}


def test_without_recommendations_the_defaults_apply(client, tmp_path):
    raster = _objects(tmp_path, None)
    result = vectorize(raster, tmp_path / "plain.gpkg", client=client, **PLAIN)
    assert found(result) == {"building": 2, "vehicle": 1}  # 4 m²: kept at the default minimum of 4


def test_an_invalid_recommendation_is_a_clear_error(client, tmp_path):
    raster = _objects(tmp_path, None)
    with rasterio.open(raster, "r+") as ds:
        ds.update_tags(**{VECTORIZE_TAG: json.dumps({"classes": {"tree": {"min_area": 3}}})})
    with pytest.raises(InputError, match="GEOSEG_VECTORIZE tag is not valid .*'tree'"):
        vectorize(raster, tmp_path / "bad.gpkg", client=client)
    assert not (tmp_path / "bad.gpkg").exists()


def _card(**kw):
    return ModelCard(classes=[c.to_dict() for c in SCHEME[:3]], bands=["r", "g", "b"],
                     normalization={"mean": [0, 0, 0], "std": [1, 1, 1]}, **kw)


def test_the_card_checks_and_keeps_its_recommendations():
    card = _card(vectorize={"building": {"min_area": 20, "min_seed_area": 4}})
    assert card.vectorize == {"building": {"min_area": 20.0, "min_seed_area": 4.0}}
    assert ModelCard.from_json(card.to_json()) == card
    assert "vectorize" not in _card().to_dict()  # cards without them read as before
    for bad, match in [({"tree": {"min_area": 1}}, "class 'tree'"), ({"building": {"buffer": 1}}, "must set some"),
                       ({"building": {"min_area": -1}}, ">= 0"), ({"building": {}}, "must set some"),
                       ({"building": {"min_area": "big"}}, ">= 0"), (["building"], "mapping")]:
        with pytest.raises(ModelError, match=match):
            _card(vectorize=bad)


class _Bright(torch.nn.Module):
    """Building where the pixels are bright, background elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(1, keepdim=True)
        return torch.cat([-m, m], 1)


def test_predict_writes_them_and_vectorize_uses_them(client, tmp_path):
    image = np.full((3, 40, 40), 10, np.uint8)
    image[:, 5:9, 5:9] = 250  # a building of 16 pixels (4 m² at 0.5 m)
    image[:, 20:30, 20:30] = 250  # one of 100 pixels (25 m²)
    scene = write_raster(tmp_path / "scene.tif", image)
    model = geoseg.Model(_Bright().eval(), ModelCard(
        classes=["background", "building"], bands=["r", "g", "b"], tile_size=32,
        normalization={"mean": [128.0] * 3, "std": [60.0] * 3}, vectorize={"building": {"min_area": 10.0}}))
    out = tmp_path / "lc.tif"
    geoseg.predict(scene, model, out, tile_size=32, overlap=8, client=client)
    with rasterio.open(out) as ds:
        assert json.loads(ds.tags()[VECTORIZE_TAG]) == {"classes": {"building": {"min_area": 10.0}}}
    result = vectorize(out, tmp_path / "b.gpkg", classes="building", client=client, **PLAIN)
    assert found(result) == {"building": 1}
    result = vectorize(out, tmp_path / "all.gpkg", classes="building", min_area=0, client=client, **PLAIN)
    assert found(result) == {"building": 2}
