"""geoseg evaluate: known answers by hand, truth in other CRSs and grids, polygon F1, the HTML report, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import shapes as raster_shapes
from rasterio.transform import from_origin
from shapely.geometry import box, shape
from support.rasters import write_raster

from geoseg import evaluate
from geoseg.classes import ClassInfo, classes_to_json
from geoseg.cli import main
from geoseg.errors import InputError, LabelError, OutputExistsError
from geoseg.evaluation.matching import match_polygons
from geoseg.evaluation.report.previews import ERROR_COLOURS, error_map
from geoseg.evaluation.windowed_shapes import WindowedShapes
from geoseg.tiling import PixelWindow

CRS_UTM = "EPSG:32633"
ORIGIN = (500000.0, 4000060.0)
CLASSES = [
    ClassInfo(0, "background", (0, 0, 0)),
    ClassInfo(1, "building", (230, 25, 75)),
    ClassInfo(2, "water", (0, 130, 200)),
    ClassInfo(3, "road", (128, 128, 128)),
]

# Hand-made 6x6 example: 9 = unlabelled (the ignore id, not in the class table), 255 = nodata.
TRUTH = np.array(
    [
        [0, 0, 1, 1, 2, 2],
        [0, 0, 1, 1, 2, 2],
        [0, 0, 0, 1, 2, 2],
        [9, 9, 0, 0, 2, 2],
        [9, 9, 0, 0, 255, 255],
        [0, 1, 1, 0, 255, 255],
    ],
    dtype=np.uint8,
)
PRED = np.array(
    [
        [0, 1, 1, 1, 2, 2],
        [0, 0, 1, 0, 2, 2],
        [0, 0, 0, 1, 2, 0],
        [1, 2, 0, 0, 2, 2],
        [0, 0, 0, 2, 2, 2],
        [255, 1, 0, 0, 1, 255],
    ],
    dtype=np.uint8,
)
# Counted by hand, pixel by pixel (rows truth 0..3, columns prediction 0..3). Left out: 4 truth nodata,
# 4 ignored (truth 9), 1 prediction nodata where the truth is valid; 27 evaluated.
CONFUSION = [
    [10, 1, 1, 0],
    [2, 5, 0, 0],
    [1, 0, 7, 0],
    [0, 0, 0, 0],
]
F = Fraction
EXPECTED = {
    # class id: (tp, fp, fn, IoU, precision, recall, F1)
    0: (10, 3, 2, F(10, 15), F(10, 13), F(10, 12), F(20, 25)),
    1: (5, 1, 2, F(5, 8), F(5, 6), F(5, 7), F(10, 13)),
    2: (7, 1, 1, F(7, 9), F(7, 8), F(7, 8), F(14, 16)),
}
MEAN_IOU = F(149, 216)  # (2/3 + 5/8 + 7/9) / 3; road (3) is absent from both and left out
PIXEL_ACCURACY = F(22, 27)
MEAN_PIXEL_ACCURACY = F(407, 504)  # (5/6 + 5/7 + 7/8) / 3


def class_raster(
    path: Path, array: np.ndarray, *, classes=CLASSES, res: float = 10.0, crs: str = CRS_UTM, origin=ORIGIN, **profile
) -> Path:
    """A geoseg class raster: uint8, nodata 255, class table tag; striped one row per block unless told."""
    profile.setdefault("blockysize", 1)
    write_raster(path, array, crs=crs, transform=from_origin(*origin, res, res), nodata=255, **profile)
    if classes is not None:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(GEOSEG_CLASSES=classes_to_json(classes))
    return path


def pixel_squares(array: np.ndarray, *, res: float = 10.0, origin=ORIGIN, margin: float = 0.2) -> gpd.GeoDataFrame:
    """One square per pixel (shrunk by ``margin`` pixels so centres stay well inside), class = pixel value."""
    x0, y0 = origin
    geoms, ids = [], []
    for r in range(array.shape[0]):
        for c in range(array.shape[1]):
            geoms.append(
                box(
                    x0 + (c + margin) * res,
                    y0 - (r + 1 - margin) * res,
                    x0 + (c + 1 - margin) * res,
                    y0 - (r + margin) * res,
                )
            )
            ids.append(int(array[r, c]))
    return gpd.GeoDataFrame({"class_id": ids}, geometry=geoms, crs=CRS_UTM)


def by_id(metrics: dict) -> dict[int, dict]:
    return {c["id"]: c for c in metrics["per_class"]}


def check_known_answers(metrics: dict) -> None:
    assert metrics["confusion_matrix"]["ids"] == [0, 1, 2, 3]
    assert metrics["confusion_matrix"]["matrix"] == CONFUSION
    assert metrics["pixels"] == {"total": 36, "evaluated": 27, "truth_nodata": 4, "ignored": 4, "prediction_nodata": 1}
    classes = by_id(metrics)
    for cid, (tp, fp, fn, iou, precision, recall, f1) in EXPECTED.items():
        c = classes[cid]
        assert (c["tp"], c["fp"], c["fn"], c["status"]) == (tp, fp, fn, "evaluated")
        for key, want in (("iou", iou), ("precision", precision), ("recall", recall), ("f1", f1)):
            assert c[key] == pytest.approx(float(want), abs=1e-12), (cid, key)
    road = classes[3]
    assert road["status"] == "absent"
    assert [road[k] for k in ("iou", "precision", "recall", "f1")] == [None] * 4
    assert metrics["mean_iou"] == pytest.approx(float(MEAN_IOU), abs=1e-12)
    assert metrics["pixel_accuracy"] == pytest.approx(float(PIXEL_ACCURACY), abs=1e-12)
    assert metrics["mean_pixel_accuracy"] == pytest.approx(float(MEAN_PIXEL_ACCURACY), abs=1e-12)


# --- pixel metrics ------------------------------------------------------------------------------------


def test_known_answers_streamed_by_row_windows(tmp_path):
    pred = class_raster(tmp_path / "pred.tif", PRED)  # six 1-row block windows
    truth = write_raster(tmp_path / "truth.tif", TRUTH, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    with rasterio.open(pred) as ds:
        assert len(list(ds.block_windows(1))) == 6
    metrics = evaluate(pred, truth, ignore_id=9)
    check_known_answers(metrics)
    assert metrics["truth"] == {"kind": "raster", "reprojected_from": None, "resampled": False}


def test_streaming_over_tiled_blocks_matches_whole_array_counts(tmp_path):
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, (70, 50)).astype(np.uint8)
    pred = np.where(rng.random((70, 50)) < 0.7, truth, rng.integers(0, 4, (70, 50))).astype(np.uint8)
    truth[rng.random((70, 50)) < 0.05] = 255
    pred[rng.random((70, 50)) < 0.05] = 255
    p = class_raster(tmp_path / "pred.tif", pred, blockysize=16, blockxsize=16, tiled=True)
    t = write_raster(tmp_path / "truth.tif", truth, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    with rasterio.open(p) as ds:
        assert len(list(ds.block_windows(1))) == 20  # 5 x 4 blocks, ragged at the right and bottom
    metrics = evaluate(p, t)
    valid = (truth != 255) & (pred != 255)
    expected = np.zeros((4, 4), int)
    np.add.at(expected, (truth[valid], pred[valid]), 1)
    assert metrics["confusion_matrix"]["matrix"] == expected.tolist()
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())


def test_without_class_table_uses_ids_found(tmp_path):
    pred = class_raster(tmp_path / "pred.tif", PRED, classes=None)
    truth = write_raster(tmp_path / "truth.tif", TRUTH, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    metrics = evaluate(pred, truth, ignore_id=9)
    assert [c["name"] for c in metrics["classes"]] == ["class_0", "class_1", "class_2"]
    assert metrics["confusion_matrix"]["matrix"] == [row[:3] for row in CONFUSION[:3]]
    assert metrics["mean_iou"] == pytest.approx(float(MEAN_IOU))
    assert any("no GEOSEG_CLASSES" in n for n in metrics["notes"])


def test_ignore_id_in_class_table_keeps_its_column(tmp_path):
    # Truth 0 means unlabelled here; a labelled pixel predicted as 0 is still an error.
    truth = np.array([[0, 1, 1], [0, 2, 2], [1, 1, 2]], np.uint8)
    pred = np.array([[1, 1, 0], [2, 2, 2], [1, 2, 2]], np.uint8)
    p = class_raster(tmp_path / "pred.tif", pred, classes=CLASSES[:3])
    t = write_raster(tmp_path / "truth.tif", truth, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    m = evaluate(p, t, ignore_id=0)
    assert m["confusion_matrix"]["matrix"] == [[0, 0, 0], [1, 2, 1], [0, 0, 3]]
    c = by_id(m)
    assert c[0]["status"] == "ignored" and c[0]["iou"] is None
    assert c[1]["iou"] == pytest.approx(2 / 4) and c[2]["iou"] == pytest.approx(3 / 4)
    assert m["mean_iou"] == pytest.approx((0.5 + 0.75) / 2)
    assert m["pixel_accuracy"] == pytest.approx(5 / 7)
    assert m["pixels"]["ignored"] == 2


# --- truth in other CRSs and on other grids -----------------------------------------------------------


@pytest.mark.parametrize("crs", [CRS_UTM, "EPSG:4326"])
def test_vector_truth_in_any_crs_gives_the_known_answers(tmp_path, crs):
    pred = class_raster(tmp_path / "pred.tif", PRED)
    squares = pixel_squares(TRUTH).to_crs(crs)
    path = tmp_path / "truth.gpkg"
    squares.to_file(path, driver="GPKG")
    metrics = evaluate(pred, path, ignore_id=9)
    check_known_answers(metrics)
    assert metrics["truth"]["kind"] == "vector"
    if crs == "EPSG:4326":
        assert metrics["truth"]["reprojected_from"] == "EPSG:4326"
        assert any("reprojected from EPSG:4326 to EPSG:32633" in n for n in metrics["notes"])
    else:
        assert metrics["truth"]["reprojected_from"] is None


def test_truth_raster_on_a_finer_larger_grid_gives_the_same_figures(tmp_path):
    # Same CRS, pixels a third of the size, and a margin of nodata around: every prediction pixel centre
    # falls in the middle of a truth pixel, so nearest neighbour gives the truth exactly.
    fine = np.full((6 * 3 + 4, 6 * 3 + 4), 255, np.uint8)
    fine[2:-2, 2:-2] = np.kron(TRUTH, np.ones((3, 3), np.uint8))
    res = 10 / 3
    truth = write_raster(
        tmp_path / "fine.tif",
        fine,
        crs=CRS_UTM,
        transform=from_origin(ORIGIN[0] - 2 * res, ORIGIN[1] + 2 * res, res, res),
        nodata=255,
    )
    metrics = evaluate(class_raster(tmp_path / "pred.tif", PRED), truth, ignore_id=9)
    check_known_answers(metrics)
    assert metrics["truth"] == {"kind": "raster", "reprojected_from": None, "resampled": True}


def test_truth_raster_in_another_crs_agrees_within_resampling_tolerance(tmp_path):
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    # 60 x 60 px of 1 m with large regions; the truth is warped to EPSG:4326 at about half the pixel size.
    yy, xx = np.mgrid[0:60, 0:60]
    truth = np.zeros((60, 60), np.uint8)
    truth[(xx - 20) ** 2 + (yy - 22) ** 2 < 12**2] = 1
    truth[(xx > 35) & (yy > 10)] = 2
    truth[50:, :30] = 3
    pred = truth.copy()
    pred[5:15, 40:55] = 0
    pred[30:40, 5:12] = 1
    transform = from_origin(*ORIGIN, 1.0, 1.0)
    p = class_raster(tmp_path / "pred.tif", pred, res=1.0, blockysize=8)
    same = write_raster(tmp_path / "same.tif", truth, crs=CRS_UTM, transform=transform, nodata=255)
    dst_t, w, h = calculate_default_transform(
        CRS_UTM, "EPSG:4326", 60, 60, left=ORIGIN[0], bottom=ORIGIN[1] - 60, right=ORIGIN[0] + 60, top=ORIGIN[1]
    )
    dst_t, w, h = dst_t * Affine.scale(0.5), w * 2, h * 2
    warped = np.full((h, w), 255, np.uint8)
    reproject(
        truth,
        warped,
        src_transform=transform,
        src_crs=CRS_UTM,
        dst_transform=dst_t,
        dst_crs="EPSG:4326",
        resampling=Resampling.nearest,
        dst_nodata=255,
    )
    geo = write_raster(tmp_path / "geo.tif", warped, crs="EPSG:4326", transform=dst_t, nodata=255)

    a, b = evaluate(p, same), evaluate(p, geo)
    assert b["truth"]["reprojected_from"] == "EPSG:4326"
    assert any("truth reprojected from EPSG:4326" in n for n in b["notes"])
    # The figures cannot be identical: a lat/lon grid does not line up with the UTM grid, so the two
    # nearest-neighbour resamplings (UTM -> EPSG:4326 here, back onto the prediction grid in evaluate) move
    # region edges by up to half a truth pixel, and prediction pixels on the scene edge whose nearest truth
    # pixel centre lies outside the warped raster get no truth (one row or column here).  Interiors agree.
    for key in ("mean_iou", "pixel_accuracy", "mean_pixel_accuracy"):
        assert b[key] == pytest.approx(a[key], abs=0.01), key
    for ca, cb in zip(a["per_class"], b["per_class"], strict=True):
        assert cb["iou"] == pytest.approx(ca["iou"], abs=0.01), ca["name"]
    assert b["pixels"]["evaluated"] >= 0.97 * a["pixels"]["evaluated"]


# --- polygon metrics -------------------------------------------------------------------------------------

TRUTH_POLYS = [box(0, 0, 10, 10), box(10, 0, 20, 10), box(30, 30, 40, 40), box(60, 60, 70, 70), box(80, 80, 90, 90)]
PRED_POLYS = [
    box(0, 0, 20, 10),  # covers truths 0 and 1: IoU 0.5 with each, matches only one (truth 0: lower index)
    box(30, 30, 40, 40),  # exact match of truth 2
    box(31, 30, 40, 40),  # duplicate of truth 2 (IoU 0.9): a false positive once truth 2 is taken
    box(100, 100, 110, 110),  # nowhere near a truth
    box(80, 80, 90, 89),  # truth 4 at IoU 0.9
    box(200, 0, 210, 10),  # nowhere near a truth
]


def test_polygon_matching_by_hand():
    r = match_polygons(TRUTH_POLYS, PRED_POLYS, iou_threshold=0.5)
    assert (r.tp, r.fp, r.fn) == (3, 3, 2)
    assert sorted((t, p) for t, p, _ in r.pairs) == [(0, 0), (2, 1), (4, 4)]
    assert (r.precision, r.recall, r.f1) == (pytest.approx(0.5), pytest.approx(0.6), pytest.approx(6 / 11))
    strict = match_polygons(TRUTH_POLYS, PRED_POLYS, iou_threshold=0.6)
    assert (strict.tp, strict.fp, strict.fn) == (2, 4, 3)
    shuffled = match_polygons(TRUTH_POLYS, PRED_POLYS[::-1], iou_threshold=0.5)
    assert (shuffled.tp, shuffled.fp, shuffled.fn) == (3, 3, 2)
    empty = match_polygons([], PRED_POLYS)
    assert (empty.tp, empty.fp, empty.fn, empty.precision, empty.recall) == (0, 6, 0, 0.0, None)


def brute_force_match(truth, pred, threshold):
    """The SpaceNet rule without an index: every pair, best IoU first, each polygon used once."""
    candidates = []
    for i, t in enumerate(truth):
        for j, q in enumerate(pred):
            inter = t.intersection(q).area
            if inter > 0:
                iou = inter / (t.area + q.area - inter)
                if iou >= threshold - 1e-9:
                    candidates.append((-iou, i, j))
    used_truth, used_pred = set(), set()
    for _, i, j in sorted(candidates):
        if i not in used_truth and j not in used_pred:
            used_truth.add(i)
            used_pred.add(j)
    tp = len(used_truth)
    return tp, len(pred) - tp, len(truth) - tp


boxes = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 12), st.integers(1, 12)).map(
        lambda b: box(b[0], b[1], b[0] + b[2], b[1] + b[3])
    ),
    max_size=10,
)


@settings(max_examples=60, deadline=None)
@given(truth=boxes, pred=boxes, threshold=st.sampled_from([0.1, 0.3, 0.5, 0.75, 1.0]))
def test_polygon_matching_equals_brute_force(truth, pred, threshold):
    r = match_polygons(truth, pred, iou_threshold=threshold)
    assert (r.tp, r.fp, r.fn) == brute_force_match(truth, pred, threshold)
    assert len({t for t, _, _ in r.pairs}) == len({p for _, p, _ in r.pairs}) == r.tp


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


def test_windowed_shapes_equal_whole_raster_shapes():
    rng = np.random.default_rng(3)
    data = (rng.random((37, 29)) < 0.45).astype(np.uint8) + 1
    transform = from_origin(*ORIGIN, 2.0, 2.0)
    whole = sorted(
        round(shape(g).area, 6) for g, v in raster_shapes(data, connectivity=4, transform=transform) if v == 2
    )
    for step in (5, 8, 37):
        collector = WindowedShapes([2], height=37, width=29, transform=transform)
        for r in range(0, 37, step):
            for c in range(0, 29, 7):
                w = PixelWindow(r, c, min(step, 37 - r), min(7, 29 - c))
                collector.add(w, data[w.row_off : w.row_end, w.col_off : w.col_end])
        polys = collector.polygons(2)
        assert sorted(round(p.area, 6) for p in polys) == whole
        assert all(p.is_valid and p.geom_type == "Polygon" for p in polys)


# --- report ---------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class TableReader(HTMLParser):
    """Collects ``data-metric``/``data-value`` cells and their text, per row, of one table."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth, self.rows, self.cell = table_id, 0, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == self.table_id:
            self.depth = 1
        elif self.depth and tag == "tr" and "data-class-id" in a:
            self.rows.append({"id": int(a["data-class-id"]), "cells": {}})
        elif self.depth and tag == "td" and "data-metric" in a and self.rows:
            self.cell = [a["data-metric"], a.get("data-value"), ""]

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[2] += data

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[-1]["cells"][self.cell[0]] = (self.cell[1], self.cell[2].strip())
            self.cell = None
        elif tag == "table" and self.depth:
            self.depth = 0


def chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def nb_report(tmp_path_factory, shared_data):
    """A report on the New Brunswick tile: prediction = truth mask with known changes, polygons, the image."""
    tmp = tmp_path_factory.mktemp("nb")
    nb = shared_data / "new_brunswick"
    with rasterio.open(nb / "nb_1of2_mask.tif") as ds:
        mask, transform, crs = ds.read(1), ds.transform, ds.crs
    pred = mask.copy()
    pred[100:140, 50:120] = 2  # vegetation painted over a block
    pred[0:10, :] = 3  # road along the top edge
    pred[200:201, :] = 255  # a row without prediction
    classes = [
        ClassInfo(0, "background", (0, 0, 0)),
        ClassInfo(1, "Building", (230, 25, 75)),
        ClassInfo(2, "Vegetation", (60, 180, 75)),
        ClassInfo(3, "Road", (150, 150, 150)),
        ClassInfo(4, "Hydro", (0, 130, 200)),
        ClassInfo(5, "Train", (145, 30, 180)),
    ]
    p = write_raster(tmp / "pred.tif", pred, crs=crs, transform=transform, nodata=255, blockysize=29)
    with rasterio.open(p, "r+") as ds:
        ds.update_tags(GEOSEG_CLASSES=classes_to_json(classes))
    geoms = [shape(g) for g, _ in raster_shapes(pred, mask=pred == 1, connectivity=4, transform=transform)]
    gpd.GeoDataFrame(
        {"class_id": 1, "class_name": "Building", "area_m2": [g.area for g in geoms]}, geometry=geoms, crs=crs
    ).to_file(tmp / "pv.gpkg", layer="Building", driver="GPKG")
    result = CliRunner().invoke(
        main,
        [
            "-q",
            "evaluate",
            str(p),
            "--truth",
            str(nb / "nb_1of2_labels.gpkg"),
            "--pred-vectors",
            str(tmp / "pv.gpkg"),
            "--image",
            str(nb / "nb_1of2_image.tif"),
            "--ignore-id",
            "0",
            "--out",
            str(tmp / "report"),
        ],
    )
    assert result.exit_code == 0, result.output
    return {"dir": tmp / "report", "stdout": result.output, "mask": mask, "pred": pred, "tmp": tmp, "pred_path": p}


def test_real_data_figures(nb_report, shared_data):
    m = json.loads((nb_report["dir"] / "metrics.json").read_text())
    mask, pred = nb_report["mask"], nb_report["pred"]
    keep = (mask != 0) & (mask != 255) & (pred != 255)
    assert m["pixels"]["evaluated"] == int(keep.sum())
    assert m["pixels"]["ignored"] == int((mask == 0).sum()) == 63441
    assert m["pixels"]["prediction_nodata"] == int(((pred == 255) & (mask != 0)).sum())
    c = by_id(m)
    # Unchanged pixels agree; the changes make known errors.
    building = keep & (mask == 1)
    assert c[1]["fn"] == int((building & (pred != 1)).sum()) and c[1]["fp"] == 0 and c[1]["precision"] == 1.0
    veg_fp = int((keep & (pred == 2) & (mask != 2)).sum())
    assert c[2]["fp"] == veg_fp and c[2]["recall"] == 1.0
    for cid in (1, 2, 3, 4):
        tp = int((keep & (mask == cid) & (pred == cid)).sum())
        union = int((keep & ((mask == cid) | (pred == cid))).sum())
        assert c[cid]["iou"] == pytest.approx(tp / union), cid
    assert c[5]["status"] == "absent" and c[0]["status"] == "ignored"
    ious = [c[i]["iou"] for i in (1, 2, 3, 4)]
    assert m["mean_iou"] == pytest.approx(sum(ious) / 4)
    assert m["pixel_accuracy"] == pytest.approx(int((keep & (mask == pred)).sum()) / int(keep.sum()))
    # Polygons: the labelled outlines against the traced prediction, checked by brute force; the nodata row
    # cuts buildings in two, and the smaller pieces are false positives.
    [row] = m["polygon_metrics"]["classes"]
    labels = gpd.read_file(shared_data / "new_brunswick" / "nb_1of2_labels.gpkg")
    truth_polys = list(labels.geometry[labels.class_id == 1])
    with rasterio.open(nb_report["pred_path"]) as ds:
        pred_polys = [shape(g) for g, _ in raster_shapes(pred, mask=pred == 1, connectivity=4, transform=ds.transform)]
    assert row["truth_polygons"] == len(truth_polys) == 19
    assert row["predicted_polygons"] == len(pred_polys)
    assert (row["tp"], row["fp"], row["fn"]) == brute_force_match(truth_polys, pred_polys, 0.5)
    assert row["fp"] > 0 and row["tp"] > 15
    # The same figures from the mask raster instead of the labels.
    again = evaluate(nb_report["pred_path"], shared_data / "new_brunswick" / "nb_1of2_mask.tif", ignore_id=0)
    assert again["confusion_matrix"] == m["confusion_matrix"]
    assert f"mean IoU {m['mean_iou']:.4f}" in nb_report["stdout"] and "report.html" in nb_report["stdout"]


def test_report_files_and_previews(nb_report):
    from PIL import Image

    folder = nb_report["dir"]
    for name in (
        "metrics.json",
        "report.html",
        "confusion_matrix.png",
        "preview_scene.png",
        "preview_prediction.png",
        "preview_truth.png",
        "preview_errors.png",
    ):
        assert (folder / name).stat().st_size > 0, name
    with Image.open(folder / "preview_prediction.png") as im:
        assert im.size == (280, 341)
    page = (folder / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and page.count("data:image/png;base64,") == 5
    assert not list(folder.glob("*.geoseg-tmp-*"))


def test_report_opens_in_chromium_and_shows_the_metrics(nb_report, tmp_path):
    from PIL import Image

    url = (nb_report["dir"] / "report.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", url, tmp_path=tmp_path)
    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape[:2] == (1600, 1200)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500  # text, tables, the confusion matrix, previews
    assert rgb.std() > 20

    dom = chromium("--dump-dom", url, tmp_path=tmp_path).stdout
    metrics = json.loads((nb_report["dir"] / "metrics.json").read_text())
    reader = TableReader("metrics")
    reader.feed(dom)
    assert [r["id"] for r in reader.rows] == [c["id"] for c in metrics["per_class"]]
    for row, c in zip(reader.rows, metrics["per_class"], strict=True):
        for key in ("iou", "precision", "recall", "f1"):
            value, text = row["cells"][key]
            if c[key] is None:
                assert value == "" and text == "\u2013"
            else:
                assert text == f"{c[key]:.4f}" and float(value) == c[key]
        assert row["cells"]["truth_pixels"][1] == str(c["truth_pixels"])
    poly = TableReader("polygon-metrics")
    poly.feed(dom)
    [prow] = poly.rows
    assert prow["cells"]["f1"][1] == f"{metrics['polygon_metrics']['classes'][0]['f1']:.4f}"


def test_preview_long_side_is_bounded(tmp_path):
    from PIL import Image

    wide = np.zeros((30, 2100), np.uint8)
    wide[:, 1000:] = 1
    p = class_raster(tmp_path / "pred.tif", wide, blockysize=16)
    m = evaluate(p, p, tmp_path / "report")
    with Image.open(tmp_path / "report" / "preview_errors.png") as im:
        assert im.size == (1024, 15)
    assert m["pixel_accuracy"] == 1.0


def test_error_map_colours():
    truth = np.array([[0, 0, 1, 1, 2, 9, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 0, 1, 1, 1]], np.uint8)
    rgba, legend = error_map(truth, pred, background_id=0, ignore_id=9)
    kinds = {v: k for k, v in legend.items()}
    got = [kinds.get(tuple(px[:3])) if px[3] else None for px in rgba[0]]
    assert got == [
        "correct background",
        "false positive (background predicted as a class)",
        "correct",
        "false negative (class predicted as background)",
        "wrong class",
        None,  # ignore id: left out
        None,  # no truth: left out
    ]
    rgba, legend = error_map(truth, pred, background_id=None, ignore_id=9)
    assert set(legend) == {"correct", "wrong class"}
    assert tuple(rgba[0, 2, :3]) == ERROR_COLOURS["correct"] and tuple(rgba[0, 1, :3]) == ERROR_COLOURS["wrong class"]


def test_cli_overwrite_replaces_the_report_and_reprojected_scene_preview(tmp_path):
    from PIL import Image

    pred = class_raster(tmp_path / "pred.tif", PRED)
    squares = pixel_squares(TRUTH).to_crs("EPSG:4326")
    squares.to_file(tmp_path / "truth.geojson", driver="GeoJSON")
    # The scene on another grid (a larger extent at 5 m): warped onto the preview grid.
    rgb = np.stack([np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)] * 3)
    scene = write_raster(
        tmp_path / "scene.tif", rgb, crs=CRS_UTM, transform=from_origin(ORIGIN[0] - 10, ORIGIN[1] + 10, 5, 5)
    )
    out = tmp_path / "report"
    args = [
        "-q",
        "evaluate",
        str(pred),
        "--truth",
        str(tmp_path / "truth.geojson"),
        "--ignore-id",
        "9",
        "--out",
        str(out),
    ]
    first = CliRunner().invoke(main, [*args, "--image", str(scene)])
    assert first.exit_code == 0, first.output
    with Image.open(out / "preview_scene.png") as im:
        assert im.size == (6, 6) and len(np.unique(np.asarray(im).reshape(-1, 4), axis=0)) > 6
    page = (out / "report.html").read_text()
    assert "truth reprojected from EPSG:4326" in page
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "not empty" in again.output
    again = CliRunner().invoke(main, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    assert not (out / "preview_scene.png").exists()
    check_known_answers(json.loads((out / "metrics.json").read_text()))


def test_returned_dict_equals_metrics_json(tmp_path):
    pred = class_raster(tmp_path / "pred.tif", PRED)
    truth = write_raster(tmp_path / "truth.tif", TRUTH, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    m = evaluate(pred, truth, tmp_path / "rep", ignore_id=9)
    assert m == json.loads((tmp_path / "rep" / "metrics.json").read_text())
    check_known_answers(m)


# --- output folder and bad input ------------------------------------------------------------------------


def test_refuses_non_empty_report_folder_without_overwrite(tmp_path):
    pred = class_raster(tmp_path / "pred.tif", PRED)
    truth = write_raster(tmp_path / "truth.tif", TRUTH, crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255)
    out = tmp_path / "rep"
    out.mkdir()
    (out / "metrics.json").write_text("old")
    with pytest.raises(OutputExistsError, match="not empty"):
        evaluate(pred, truth, out, ignore_id=9)
    assert (out / "metrics.json").read_text() == "old"
    evaluate(pred, truth, out, ignore_id=9, overwrite=True)
    assert json.loads((out / "metrics.json").read_text())["mean_iou"] == pytest.approx(float(MEAN_IOU))


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    pred = class_raster(tmp_path / "pred.tif", PRED)
    t = from_origin(*ORIGIN, 10, 10)
    far = write_raster(
        tmp_path / "far.tif", TRUTH, crs=CRS_UTM, transform=from_origin(ORIGIN[0] + 1e5, ORIGIN[1], 10, 10), nodata=255
    )
    unknown = write_raster(
        tmp_path / "unknown.tif", np.where(TRUTH == 1, 7, TRUTH).astype(np.uint8), crs=CRS_UTM, transform=t, nodata=255
    )
    squares = pixel_squares(TRUTH)
    squares.to_file(tmp_path / "unknown.gpkg", driver="GPKG")
    far_vec = squares.assign(geometry=squares.translate(1e5, 0))
    far_vec[far_vec.class_id != 9].to_file(tmp_path / "far.gpkg", driver="GPKG")
    no_col = squares.rename(columns={"class_id": "cls"})
    no_col.to_file(tmp_path / "nocol.gpkg", driver="GPKG")
    (tmp_path / "labels.txt").write_text("1,2,3")
    good = str(tmp_path / "truth_ok.tif")
    write_raster(Path(good), TRUTH, crs=CRS_UTM, transform=t, nodata=255)
    p = str(pred)
    return {
        "missing prediction": ([str(tmp_path / "nope.tif"), "--truth", good, "--ignore-id", "9"], "does not exist"),
        "missing truth": ([p, "--truth", str(tmp_path / "nope.gpkg")], "does not exist"),
        "truth raster elsewhere": ([p, "--truth", str(far), "--ignore-id", "9"], "does not overlap"),
        "truth polygons elsewhere": ([p, "--truth", str(tmp_path / "far.gpkg")], "does not overlap"),
        "unknown raster ids": ([p, "--truth", str(unknown), "--ignore-id", "9"], "class ids [7]"),
        "unknown vector ids": ([p, "--truth", str(tmp_path / "unknown.gpkg")], "class ids [9]"),
        "no class column": ([p, "--truth", str(tmp_path / "nocol.gpkg"), "--ignore-id", "9"], "no column 'class_id'"),
        "truth of unknown type": (
            [p, "--truth", str(tmp_path / "labels.txt"), "--ignore-id", "9"],
            "unknown file type",
        ),
        "missing pred vectors": (
            [p, "--truth", good, "--ignore-id", "9", "--pred-vectors", str(tmp_path / "no.gpkg")],
            "does not exist",
        ),
    }


def test_bad_input_gives_one_line_errors_and_no_report(tmp_path):
    for label, (args, message) in bad_inputs(tmp_path).items():
        out = tmp_path / f"rep-{label.replace(' ', '-')}"
        result = CliRunner().invoke(main, ["-q", "evaluate", *args, "--out", str(out)])
        assert result.exit_code == 1, (label, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (label, result.output)
        assert not out.exists(), label


def test_library_errors_are_typed(tmp_path):
    pred = class_raster(tmp_path / "pred.tif", PRED)
    unknown = write_raster(
        tmp_path / "u.tif", np.full_like(TRUTH, 8), crs=CRS_UTM, transform=from_origin(*ORIGIN, 10, 10), nodata=255
    )
    with pytest.raises(LabelError, match="not in the prediction's class table"):
        evaluate(pred, unknown)
    with pytest.raises(InputError, match="does not exist"):
        evaluate(pred, tmp_path / "none.tif")
    with pytest.raises(ValueError, match="IoU threshold"):
        evaluate(pred, pred, iou_threshold=0)


def test_cli_help_stays_light():
    code = (
        "import sys; from geoseg.cli import main; sys.argv=['geoseg','evaluate','--help']\n"
        "try:\n main()\nexcept SystemExit: pass\n"
        "print(sorted(m for m in ('torch','dask','rasterio','geopandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--pred-vectors" in out and out.strip().endswith("[]")
