"""Hand-made evaluation cases: a 6x6 truth and prediction counted by hand, class rasters, polygon sets."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from geoseg.classes import ClassInfo, classes_to_json
from support.rasters import write_raster

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


TRUTH_POLYS = [box(0, 0, 10, 10), box(10, 0, 20, 10), box(30, 30, 40, 40), box(60, 60, 70, 70), box(80, 80, 90, 90)]
PRED_POLYS = [
    box(0, 0, 20, 10),  # covers truths 0 and 1: IoU 0.5 with each, matches only one (truth 0: lower index)
    box(30, 30, 40, 40),  # exact match of truth 2
    box(31, 30, 40, 40),  # duplicate of truth 2 (IoU 0.9): a false positive once truth 2 is taken
    box(100, 100, 110, 110),  # nowhere near a truth
    box(80, 80, 90, 89),  # truth 4 at IoU 0.9
    box(200, 0, 210, 10),  # nowhere near a truth
]



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

