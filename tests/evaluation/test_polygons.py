"""Polygon metrics through evaluate: predicted layers against truth polygons, traced or given."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.features import shapes as raster_shapes
from rasterio.transform import from_origin
from shapely.geometry import shape
from support.evaluation_cases import CRS_UTM, ORIGIN, PRED_POLYS, TRUTH_POLYS, class_raster
from support.rasters import write_raster

from geoseg import evaluate


def test_unmatched_predictions_over_unlabelled_truth_are_left_out(tmp_path):
    truth = np.zeros((12, 12), np.uint8)
    truth[:6] = 9  # unlabelled: the ignore id
    truth[8:10, 2:5] = 1
    pred = np.zeros((12, 12), np.uint8)
    pred[1:3, 1:4] = 1  # over unlabelled ground: not a false positive
    pred[8:10, 2:5] = 1  # matches the truth building
    pred[7:9, 8:10] = 1  # over labelled background: a false positive
    p = class_raster(tmp_path / "pred.tif", pred, blockysize=4)
    t = write_raster(tmp_path / "truth.tif", truth, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    with rasterio.open(p) as ds:
        geoms = [shape(g) for g, _ in raster_shapes(pred, mask=pred == 1, connectivity=4, transform=ds.transform)]
    gpd.GeoDataFrame({"class_id": [1] * 3}, geometry=geoms, crs=CRS_UTM).to_file(tmp_path / "pv.gpkg", layer="building")
    m = evaluate(p, t, pred_vectors=tmp_path / "pv.gpkg", ignore_id=9)
    [row] = m["polygon_metrics"]["classes"]
    assert (row["predicted_polygons"], row["left_out"], row["tp"], row["fp"], row["fn"]) == (3, 1, 1, 1, 0)
    assert row["precision"] == pytest.approx(0.5) and row["recall"] == 1.0
    assert any("not counted as false positives" in n for n in m["notes"])


def _polygon_case(tmp_path: Path, truth_crs: str) -> dict:
    x0, y0 = ORIGIN[0], ORIGIN[1] - 300

    def shift(geoms):
        return [shapely.affinity.translate(g, x0 + 20, y0 + 20) for g in geoms]

    pred = class_raster(tmp_path / "pred.tif", np.zeros((30, 30), np.uint8))  # 300 m square covering all polygons
    truth = gpd.GeoDataFrame({"class_id": [1] * 5}, geometry=shift(TRUTH_POLYS), crs=CRS_UTM).to_crs(truth_crs)
    truth.to_file(tmp_path / "truth.gpkg", driver="GPKG")
    gpd.GeoDataFrame(
        {"class_id": [1] * 6, "area_m2": [g.area for g in PRED_POLYS]}, geometry=shift(PRED_POLYS), crs=CRS_UTM
    ).to_file(tmp_path / "pv.gpkg", layer="building", driver="GPKG")
    return evaluate(pred, tmp_path / "truth.gpkg", pred_vectors=tmp_path / "pv.gpkg")


@pytest.mark.parametrize("truth_crs", [CRS_UTM, "EPSG:4326"])
def test_polygon_metrics_through_evaluate(tmp_path, truth_crs):
    [row] = _polygon_case(tmp_path, truth_crs)["polygon_metrics"]["classes"]
    assert (row["name"], row["truth_polygons"], row["predicted_polygons"]) == ("building", 5, 6)
    assert (row["tp"], row["fp"], row["fn"]) == (3, 3, 2)
    assert row["precision"] == pytest.approx(0.5) and row["recall"] == pytest.approx(0.6)
    assert row["f1"] == pytest.approx(6 / 11)


def test_single_layer_predicted_polygons_are_split_by_class_id(tmp_path):
    _polygon_case(tmp_path, CRS_UTM)
    pv = gpd.read_file(tmp_path / "pv.gpkg", layer="building")
    water = gpd.GeoDataFrame({"class_id": [2]}, geometry=[pv.geometry.iloc[0].buffer(-1)], crs=CRS_UTM)
    pd.concat([pv, water]).to_file(tmp_path / "pv.geojson", driver="GeoJSON")
    m = evaluate(tmp_path / "pred.tif", tmp_path / "truth.gpkg", pred_vectors=tmp_path / "pv.geojson")
    building, water_row = m["polygon_metrics"]["classes"]
    assert (building["name"], building["tp"], building["fp"], building["fn"]) == ("building", 3, 3, 2)
    assert (water_row["name"], water_row["truth_polygons"], water_row["tp"], water_row["fp"]) == ("water", 0, 0, 1)
    assert water_row["precision"] == 0.0 and water_row["recall"] is None


def test_polygons_traced_from_truth_raster_across_window_seams(tmp_path):
    # Buildings spanning several 2-row windows, two touching only at a corner (separate under 4-connectivity).
    truth = np.zeros((12, 12), np.uint8)
    truth[1:7, 1:4] = 1
    truth[7:9, 4:6] = 1  # meets the first building only at a corner
    truth[3:10, 8:11] = 1
    truth[10, 0] = 1
    pred_px = truth.copy()
    pred_px[10, 0] = 0
    pred = class_raster(tmp_path / "pred.tif", pred_px, blockysize=2)
    t = write_raster(tmp_path / "truth.tif", truth, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    with rasterio.open(pred) as ds:
        geoms = [shape(g) for g, _ in raster_shapes(pred_px, mask=pred_px == 1, connectivity=4, transform=ds.transform)]
        crs = ds.crs
    assert len(geoms) == 3
    gpd.GeoDataFrame({"class_id": [1] * 3}, geometry=geoms, crs=crs).to_file(tmp_path / "pv.gpkg", layer="building")
    m = evaluate(pred, t, pred_vectors=tmp_path / "pv.gpkg")
    [row] = m["polygon_metrics"]["classes"]
    assert (row["truth_polygons"], row["tp"], row["fp"], row["fn"]) == (4, 3, 0, 1)

