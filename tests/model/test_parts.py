"""Models with part classes: the card's part table, and what predict writes (a plain map and the part sidecar)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.nets import PixelNet
from support.rasters import write_raster

from geoseg import Model, ModelCard
from geoseg.classes import CLASSES_TAG, PARTS_TAG, PartScheme
from geoseg.errors import ModelError
from geoseg.prediction.parts import concentrate, display_lut

CLASSES = [{"id": 0, "name": "background"}, {"id": 1, "name": "building"},
           {"id": 2, "name": "building_border"}, {"id": 3, "name": "building_contact"}]
NORM = {"mean": [100.0] * 3, "std": [50.0] * 3}


def card(**kw) -> ModelCard:
    return ModelCard(classes=CLASSES, bands=["r", "g", "b"], normalization=NORM, tile_size=32,
                     parts=[{"of": 1, "border": 2, "contact": 3}], **kw)


def test_card_parts_round_trip_and_fold():
    c = card()
    assert c.parts == (PartScheme(1, 2, 3),)
    assert ModelCard.from_json(c.to_json()) == c
    assert [x.name for x in c.display_classes] == ["background", "building"]
    assert [c.display_id(i) for i in range(4)] == [0, 1, 1, 1]
    plain = ModelCard(classes=["a", "b"], bands=["r"], normalization={"mean": [0], "std": [1]})
    assert "parts" not in plain.to_dict() and plain.display_classes == plain.classes  # older readers see no change


@pytest.mark.parametrize("parts, match", [
    ([{"of": 1, "border": 2, "contact": 9}], "not in the card"),
    ([{"of": 1, "border": 1, "contact": 3}], "three different class ids"),
    ([{"of": 1, "border": 2}], "'of', 'border' and 'contact'"),
    ({"of": 1, "border": 2, "contact": 3}, "list of part schemes"),
])
def test_bad_part_tables_are_refused(parts, match):
    with pytest.raises(ModelError, match=match):
        ModelCard(classes=CLASSES, bands=["r"], normalization={"mean": [0], "std": [1]}, parts=parts)


def test_concentrate_gives_the_building_its_whole_probability():
    probs = torch.tensor([0.4, 0.25, 0.2, 0.15]).view(1, 4, 1, 1).repeat(1, 1, 2, 2)
    out = concentrate(probs.clone(), card())
    # Background 0.4 beats every part alone, but not the building (0.6): the body takes it all.
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.4, 0.6, 0.0, 0.0]))
    assert torch.allclose(out.sum(1), torch.ones(1, 2, 2))
    plain = ModelCard(classes=["a", "b"], bands=["r"], normalization={"mean": [0], "std": [1]})
    assert torch.equal(concentrate(probs.clone()[:, :2], plain), probs[:, :2])
    lut = display_lut(card())
    assert lut[[0, 1, 2, 3, 255]].tolist() == [0, 1, 1, 1, 255] and display_lut(plain) is None


def test_predict_writes_a_plain_map_and_the_part_sidecar(tmp_path):
    import rasterio

    import geoseg

    rng = np.random.default_rng(0)
    scene = write_raster(tmp_path / "scene.tif", rng.integers(0, 255, (3, 70, 90), dtype=np.uint8))
    model = Model(PixelNet(3, 4, seed=2).eval(), card())
    out = tmp_path / "lc.tif"
    geoseg.predict(scene, model, out, confidence=tmp_path / "conf.tif", tile_size=32, overlap=8)
    side = tmp_path / "lc.parts.tif"
    with rasterio.open(out) as ds, rasterio.open(side) as sd:
        ids, parts = ds.read(1), sd.read(1)
        assert [c["name"] for c in json.loads(ds.tags()[CLASSES_TAG])] == ["background", "building"]
        assert json.loads(ds.tags()[PARTS_TAG]) == {"parts": [{"of": 1, "border": 2, "contact": 3}]}
        assert len(json.loads(sd.tags()[CLASSES_TAG])) == 4
        assert set(ds.colormap(1)) >= {0, 1}
    assert len(set(np.unique(parts).tolist()) & {2, 3}) > 0  # the stand-in net predicts some part classes
    np.testing.assert_array_equal(ids, display_lut(model.card)[parts])
    # No sidecar when asked not to write one.
    geoseg.predict(scene, model, tmp_path / "b.tif", parts=False, tile_size=32, overlap=8)
    assert not (tmp_path / "b.parts.tif").exists()


def test_batch_writes_the_sidecar_and_splits(tmp_path, shared_data):
    """A batch run with a part model: landcover.parts.tif is staged, renamed and recorded; vectorize finds it."""
    import torch
    from support.batch_tools import cli, make_archive, manifest_rows, temporaries, write_config

    import geoseg
    from geoseg.model.network import create_network

    c = ModelCard(classes=CLASSES, bands=["red", "green", "blue"],
                  normalization={"mean": [120.0] * 3, "std": [60.0] * 3},
                  architecture="unet", encoder="resnet18", tile_size=128, parts=[{"of": 1, "border": 2, "contact": 3}],
                  arch_params={"encoder_depth": 3, "decoder_channels": [32, 16, 8]})
    torch.manual_seed(0)
    model = geoseg.save_model(Model(create_network(c).eval(), c), tmp_path / "parts.safetensors")
    archive = make_archive(shared_data, tmp_path / "archive", names=("kampala",), bad=False)
    config = write_config(tmp_path / "batch.yaml", archive=archive, model=model, output="out")
    import yaml

    data = yaml.safe_load(config.read_text())
    data["steps"]["vectorize"] = {"classes": ["building"], "min_area": 0}
    config.write_text(yaml.safe_dump(data))
    result = cli("-q", "batch", "run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "out" / "kampala"
    assert (folder / "landcover.parts.tif").exists() and not temporaries(tmp_path / "out")
    outputs = json.loads(manifest_rows(tmp_path / "out" / "manifest.sqlite")["kampala"]["outputs"])
    assert "parts" in outputs
    item = json.loads((folder / "item.json").read_text())
    assert "parts" in item["assets"]
    import rasterio

    with rasterio.open(folder / "landcover.tif") as ds, rasterio.open(folder / "landcover.parts.tif") as sd:
        np.testing.assert_array_equal(ds.read(1), display_lut(c)[sd.read(1)])
    assert list(folder.glob("*.gpkg"))
