"""Partial vehicle labels: the label raster, the candidate-set loss, and a tiny training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.rasters import write_raster

from geoseg.classes import NODATA
from geoseg.io.rasters import inspect_scene
from geoseg.training.partial_labels import (
    BACKGROUND,
    BUILDING,
    BUILDING_BORDER,
    CLASSES,
    NOT_BUILDING,
    PARTS,
    VEHICLE,
    VEHICLE_BORDER,
    VEHICLE_CONTACT,
    CandidateSetLoss,
    build_label_raster,
    label_codes,
)

PIXEL = 0.15
ORIGIN = (500000.0, 4000000.0)
WIDTHS = {"building_border": 0.45, "building_contact": 0.9, "vehicle_border": 0.3, "vehicle_contact": 0.45}


def xy(col: float, row: float) -> tuple[float, float]:
    return ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL


def box(c0: float, r0: float, c1: float, r1: float):
    import shapely

    (x0, y0), (x1, y1) = xy(c0, r0), xy(c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def scene(folder: Path, size: int = 120) -> tuple[Path, Path, Path]:
    """An image, its buildings, and a vehicles GeoPackage (vehicles, labelled_areas, uncertain)."""
    import geopandas as gpd
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    image = write_raster(folder / "image.tif", rng.integers(0, 255, (3, size, size), dtype=np.uint8),
                         transform=from_origin(*ORIGIN, PIXEL, PIXEL))
    crs = "EPSG:32633"
    buildings = folder / "buildings.gpkg"
    gpd.GeoDataFrame({"class_id": [1]}, geometry=[box(70, 10, 110, 40)], crs=crs).to_file(buildings)
    vehicles = folder / "vehicles.gpkg"
    cars = [box(10, 60, 22, 90), box(22, 60, 34, 90), box(45, 60, 57, 90), box(90, 90, 102, 118)]
    uid = ["a", "b", "c", "d"]
    frame = gpd.GeoDataFrame
    frame({"class_id": [2] * 4, "vehicle_uid": uid}, geometry=cars, crs=crs).to_file(vehicles, layer="vehicles")
    frame({"crop_id": ["x"]}, geometry=[box(0, 50, 60, 120)], crs=crs).to_file(vehicles, layer="labelled_areas")
    frame({"note": ["motorbike"]}, geometry=[box(2, 100, 8, 110)], crs=crs).to_file(vehicles, layer="uncertain")
    return image, buildings, vehicles


def test_label_raster_says_only_what_is_known(tmp_path):
    import rasterio

    image, buildings, vehicles = scene(tmp_path)
    info = inspect_scene(image)
    stats = build_label_raster(info, buildings, vehicles, tmp_path / "labels.tif", widths=WIDTHS,
                               exclude=[*xy(110, 10), *xy(120, 0)])
    with rasterio.open(stats.path) as ds:
        labels = ds.read(1)
    assert stats.vehicles == 4 and stats.labelled_areas == 1 and stats.uncertain == 1
    assert labels[55, 40] == BACKGROUND  # inside the crop, nothing drawn: not a vehicle
    assert labels[75, 51] == VEHICLE  # the body of a lone car
    assert labels[61, 51] == VEHICLE_BORDER  # its rim, next to the background
    assert labels[75, 22] == VEHICLE_CONTACT and labels[75, 21] == VEHICLE_CONTACT  # two cars touching
    assert labels[75, 16] == VEHICLE and labels[75, 28] == VEHICLE  # ... each keeps its own body
    assert labels[105, 5] == NODATA  # uncertain: ignored
    assert labels[100, 95] == NOT_BUILDING  # a car outside the crop is never called background
    assert labels[5, 5] == NOT_BUILDING
    assert labels[25, 90] == BUILDING and labels[11, 90] == BUILDING_BORDER  # buildings are known everywhere
    assert labels[5, 115] == NODATA  # the excluded area


def test_label_codes_map_sets_past_the_classes():
    train, exact, sets = label_codes()
    n = len(CLASSES)
    assert train[NOT_BUILDING] == n and sets == [(BACKGROUND, VEHICLE)]
    assert exact[NOT_BUILDING] < 0 and train[NODATA] < 0
    assert [train[c.id] for c in CLASSES] == list(range(n))
    assert {p["of"] for p in PARTS} == {BUILDING, VEHICLE}


def test_candidate_set_loss_never_calls_a_car_background():
    import torch

    n = len(CLASSES)
    train, _, sets = label_codes()
    loss = CandidateSetLoss(n, sets, dice_weight=0.0)
    target = torch.full((1, 1, 1), int(train[NOT_BUILDING]))

    def logits(**values: float) -> torch.Tensor:
        out = torch.full((1, n, 1, 1), -5.0)
        for name, v in values.items():
            out[0, [c.name for c in CLASSES].index(name), 0, 0] = v
        return out

    as_background = loss(logits(background=5.0), target)
    as_vehicle = loss(logits(vehicle=5.0), target)
    as_building = loss(logits(building=5.0), target)
    assert as_background == pytest.approx(float(as_vehicle), abs=1e-6)  # the set does not care which member
    assert float(as_building) > float(as_background) + 5
    x = logits(vehicle=1.0, background=1.0).requires_grad_(True)
    loss(x, target).backward()
    grad = x.grad[0, :, 0, 0]
    members = [BACKGROUND, VEHICLE]
    assert grad[members[0]] == pytest.approx(float(grad[members[1]]), rel=1e-5)  # no push between members
    assert grad[BUILDING] > 0  # only away from building

    exact = torch.full((1, 1, 1), VEHICLE)
    assert float(loss(logits(vehicle=5.0), exact)) < float(loss(logits(background=5.0), exact))


def test_vehicle_prior_limits_vehicles_in_unlabelled_areas_only_above_the_prior():
    import torch

    n = len(CLASSES)
    train, _, sets = label_codes()
    parts = (VEHICLE, VEHICLE_BORDER, VEHICLE_CONTACT)
    plain = CandidateSetLoss(n, sets, dice_weight=0.0)
    prior = CandidateSetLoss(n, sets, dice_weight=0.0, prior_channels=parts, prior=0.02, prior_weight=2.0)
    target = torch.full((1, 10, 10), int(train[NOT_BUILDING]))
    rare = torch.zeros((1, n, 10, 10))
    rare[0, BACKGROUND] = 6.0
    rare[0, VEHICLE, 0, 0] = 12.0  # one car in a hundred unlabelled pixels: under the prior, no extra cost
    assert float(prior(rare, target)) == pytest.approx(float(plain(rare, target)))
    everywhere = torch.zeros((1, n, 10, 10))
    everywhere[0, VEHICLE] = 6.0  # "vehicle" all over the unlabelled area
    assert float(prior(everywhere, target)) > float(plain(everywhere, target)) + 1.5
    exact = torch.full((1, 10, 10), BACKGROUND)  # labelled pixels are not part of the prior
    assert float(prior(everywhere, exact)) == pytest.approx(float(plain(everywhere, exact)))


@pytest.mark.slow
def test_a_tiny_training_run_writes_a_model_with_parts(tmp_path):
    import json

    from geoseg.model.file import read_card
    from geoseg.training.partial_labels import PartialScene, PartialTrainConfig, SamplerSettings, train_partial

    image, buildings, vehicles = scene(tmp_path, size=160)
    cfg = PartialTrainConfig(scenes=(PartialScene("a", image, buildings, vehicles),), resolution=PIXEL, tile_size=64,
                             crop=64, inference_tile_size=64, steps=2, batch_size=2, threads=1,
                             sampler=SamplerSettings(stride=32))
    result = train_partial(cfg, tmp_path / "m.safetensors")
    card = read_card(result.model)
    assert [c.name for c in card.classes] == [c.name for c in CLASSES]
    assert {p.of for p in card.parts} == {BUILDING, VEHICLE}
    assert card.metadata["training_scenes"] == ["a"]
    report = json.loads(result.report.read_text())
    assert report["share_drawn"]["vehicle"] > 0
