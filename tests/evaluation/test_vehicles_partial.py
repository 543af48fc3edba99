"""Scoring vehicles labelled only inside some areas: outside them and in uncertain regions nothing counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.rasters import write_raster

from geoseg.classes import CLASSES_TAG, ClassInfo, classes_to_json
from geoseg.errors import LabelError
from geoseg.evaluation.partial import evaluate_partial

PIXEL = 0.1
ORIGIN = (500000.0, 4000000.0)
CRS = "EPSG:32633"
TABLE = (ClassInfo(0, "background"), ClassInfo(1, "building"), ClassInfo(2, "vehicle"))


def box(c0: float, r0: float, c1: float, r1: float):
    import shapely

    return shapely.box(ORIGIN[0] + c0 * PIXEL, ORIGIN[1] - r1 * PIXEL, ORIGIN[0] + c1 * PIXEL, ORIGIN[1] - r0 * PIXEL)


def write_case(folder: Path) -> tuple[Path, Path, Path]:
    """Two labelled areas (left half, top and bottom), vehicles in and out of them, one uncertain region."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    truth = folder / "truth.gpkg"
    cars = [box(10, 10, 30, 55), box(50, 10, 70, 55), box(10, 110, 30, 155), box(60, 160, 80, 199)]
    gpd.GeoDataFrame({"class_id": [2] * 4, "vehicle_uid": ["a", "b", "c", "d"]}, geometry=cars,
                     crs=CRS).to_file(truth, layer="vehicles")
    gpd.GeoDataFrame({"crop_id": ["top", "bottom"]}, geometry=[box(0, 0, 100, 100), box(0, 100, 100, 200)],
                     crs=CRS).to_file(truth, layer="labelled_areas")
    gpd.GeoDataFrame({"note": ["motorbike"]}, geometry=[box(80, 20, 95, 40)], crs=CRS).to_file(truth, layer="uncertain")

    predicted = [
        box(10, 10, 30, 55),  # car a, exact
        box(50, 22, 70, 67),  # car b, shifted by a quarter of its length: IoU 0.6
        box(10, 126, 30, 171),  # car c, shifted by a third: IoU ~0.47, only matches at 0.3
        box(40, 120, 55, 150),  # a false positive inside the bottom area
        box(80, 20, 95, 40),  # on the uncertain motorbike: left out
        box(150, 50, 170, 95),  # outside every labelled area: left out, never a false positive
    ]  # car d is missed
    vectors = folder / "vectors.gpkg"
    gpd.GeoDataFrame({"class_id": [2] * len(predicted)}, geometry=predicted, crs=CRS).to_file(vectors, layer="vehicle")
    transform = from_origin(*ORIGIN, PIXEL, PIXEL)
    raster = rasterize(((g, 2) for g in predicted), out_shape=(200, 200), transform=transform, fill=0, dtype="uint8")
    path = write_raster(folder / "landcover.tif", raster, transform=transform, nodata=255, crs=CRS)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(TABLE)})
    return path, truth, vectors


def test_only_labelled_areas_count(tmp_path):
    raster, truth, vectors = write_case(tmp_path)
    m = evaluate_partial(raster, truth, vectors, out=tmp_path / "m.json")
    assert (tmp_path / "m.json").exists()
    assert m["truth_objects"] == 4 and m["predicted_polygons"] == 6
    assert m["left_out_outside_areas"] == 1 and m["left_out_uncertain"] == 1
    assert m["polygons"]["0.5"] == {"tp": 2, "fp": 2, "fn": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert m["polygons"]["0.3"]["tp"] == 3 and m["polygons"]["0.3"]["fp"] == 1 and m["polygons"]["0.3"]["fn"] == 1
    areas = {a["area"]: a for a in m["areas"]}
    assert areas["top"]["labelled"] == 2 and areas["top"]["found"] == 2 and areas["top"]["count_error"] == 0
    assert areas["bottom"]["labelled"] == 2 and areas["bottom"]["found"] == 2
    assert areas["bottom"]["tp_iou0.3"] == 1 and areas["bottom"]["tp_iou0.5"] == 0
    # pixels: only inside the areas and outside the uncertain region (the motorbike prediction is not a FP there)
    px = m["pixels"]
    assert px["scored"] == 200 * 100 - 15 * 20
    assert px["tp"] == 20 * 45 + 20 * 33 + 20 * 29
    assert px["iou"] == pytest.approx(px["tp"] / (px["tp"] + px["fp"] + px["fn"]))


def test_part_classes_count_as_the_vehicle(tmp_path):
    import rasterio

    raster, truth, vectors = write_case(tmp_path)
    table = (*TABLE, ClassInfo(5, "vehicle_border"), ClassInfo(6, "vehicle_contact"))
    with rasterio.open(raster, "r+") as ds:
        data = ds.read(1)
        data[10, 10:30] = 5  # the rim of car a, as a raw part map shows it
        ds.write(data, 1)
        ds.update_tags(**{CLASSES_TAG: classes_to_json(table)})
    m = evaluate_partial(raster, truth, vectors)
    assert m["class_ids"] == [2, 5, 6]
    assert m["pixels"]["tp"] == 20 * 45 + 20 * 33 + 20 * 29


def test_truth_without_labelled_areas_is_refused(tmp_path):
    import geopandas as gpd

    raster, truth, vectors = write_case(tmp_path)
    bare = tmp_path / "bare.gpkg"
    gpd.read_file(truth, layer="vehicles").to_file(bare, layer="vehicles")
    with pytest.raises(LabelError, match="labelled_areas"):
        evaluate_partial(raster, bare, vectors)


def test_real_labels_score_themselves_perfectly(tmp_path, shared_data):
    """The Kampala vehicle outlines, burnt and used as the prediction, score 1 everywhere."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize

    src = shared_data / "vehicles" / "kampala_oam_cluster1_vehicles.gpkg"
    image = shared_data / "kampala" / "kampala_oam_cluster1_image.tif"
    if not src.exists():
        pytest.skip("shared vehicle data not found")
    with rasterio.open(image) as ds:
        transform, shape, crs = ds.transform, (ds.height, ds.width), ds.crs
    cars = gpd.read_file(src, layer="vehicles").dissolve(by="vehicle_uid", as_index=False)
    raster = rasterize(((g, 2) for g in cars.geometry), out_shape=shape, transform=transform, fill=0, dtype="uint8")
    path = write_raster(tmp_path / "lc.tif", raster, transform=transform, crs=crs, nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(TABLE)})
    vectors = tmp_path / "v.gpkg"
    cars[["geometry"]].to_file(vectors, layer="vehicle")
    m = evaluate_partial(path, src, vectors)
    assert m["truth_objects"] == 19
    assert m["polygons"]["0.5"]["f1"] == 1.0
    assert all(a["count_error"] == 0 for a in m["areas"])
    assert m["pixels"]["iou"] == pytest.approx(1.0, abs=0.01)
    assert np.isfinite(m["counts"]["mean_abs_error_per_area"])


def test_cli_labelled_areas(tmp_path):
    import json

    from click.testing import CliRunner

    from geoseg.cli import main

    raster, truth, vectors = write_case(tmp_path)
    args = ["evaluate", str(raster), "--truth", str(truth), "--labelled-areas", "--out", str(tmp_path / "report")]
    result = CliRunner().invoke(main, [*args, "--pred-vectors", str(vectors)])
    assert result.exit_code == 0, result.output
    assert "polygon F1 0.500 at IoU 0.5, 0.750 at IoU 0.3; found 4 of 4" in result.output
    assert json.loads((tmp_path / "report" / "vehicle_metrics.json").read_text())["truth_objects"] == 4
    missing = CliRunner().invoke(main, args)
    assert missing.exit_code == 2 and "--pred-vectors" in missing.output
