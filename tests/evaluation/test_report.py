"""The report folder: previews, the HTML page in a browser, the error map, overwriting."""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from rasterio.transform import from_origin
from support.evaluation_cases import CRS_UTM, ORIGIN, PRED, TRUTH, check_known_answers, class_raster, pixel_squares
from support.rasters import write_raster

from geoseg import evaluate
from geoseg.cli import main
from geoseg.evaluation.report.previews import ERROR_COLOURS, error_map

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
