"""geoseg.evaluate: pixel figures by hand, on real data, the report folder rule, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.features import shapes as raster_shapes
from rasterio.transform import from_origin
from shapely.geometry import shape
from support.evaluation_cases import (
    CLASSES,
    CONFUSION,
    CRS_UTM,
    MEAN_IOU,
    ORIGIN,
    PRED,
    TRUTH,
    brute_force_match,
    by_id,
    check_known_answers,
    class_raster,
    pixel_squares,
)
from support.rasters import write_raster

from geoseg import evaluate
from geoseg.cli import main
from geoseg.errors import InputError, LabelError, OutputExistsError

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
