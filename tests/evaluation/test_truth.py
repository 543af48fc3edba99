"""Truth on the prediction's grid: polygons in any CRS, rasters on other grids and in other CRSs."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.transform import from_origin
from support.evaluation_cases import CRS_UTM, ORIGIN, PRED, TRUTH, check_known_answers, class_raster, pixel_squares
from support.rasters import write_raster

from geoseg import evaluate

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
