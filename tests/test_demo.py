"""The README's first command: ``geoseg demo`` on the bundled scene, and the quickstart notebook."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

from geoseg.model.file import SHIPPED_MODELS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_every_output(tmp_path):
    from rio_cogeo.cogeo import cog_validate

    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "geoseg", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in ("1/3 predict", "2/3 vectorize", "3/3 evaluate"):
        assert step in proc.stderr
    printed = proc.stdout
    for name in ("landcover.tif", "buildings.gpkg", "report.html", "preview_errors.png"):
        assert name in printed

    assert cog_validate(str(out / "landcover.tif"))[0]
    with rasterio.open(out / "landcover.tif") as ds, rasterio.open(geoseg_data("kampala_demo.tif")) as scene:
        assert ds.crs == scene.crs and ds.shape == scene.shape and ds.transform == scene.transform
        assert 1 in set(ds.read(1).ravel().tolist())  # buildings found

    with sqlite3.connect(out / "buildings.gpkg") as db:  # a GeoPackage, with a building layer holding features
        (count,) = db.execute("SELECT COUNT(*) FROM building").fetchone()
        layers = {r[0] for r in db.execute("SELECT table_name FROM gpkg_contents")}
    assert "building" in layers and count > 5

    metrics = json.loads((out / "report" / "metrics.json").read_text())
    building = next(c for c in metrics["per_class"] if c["name"] == "building")
    assert building["iou"] is not None and 0 < building["iou"] <= 1
    poly = next(c for c in metrics["polygon_metrics"]["classes"] if c["name"] == "building")
    assert poly["truth_polygons"] > 0 and poly["f1"] is not None
    html = (out / "report" / "report.html").read_text()
    assert f"{building['iou']:.4f}" in html
    assert (out / "report" / "preview_errors.png").stat().st_size > 1000

    again = subprocess.run([sys.executable, "-m", "geoseg", "-q", "demo", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "--overwrite" in again.stderr


def geoseg_data(name: str) -> Path:
    import geoseg

    return Path(geoseg.__file__).parent / "data" / name


def test_shipped_model_card_is_complete():
    import geoseg

    card = geoseg.read_card("buildings")
    assert [c.name for c in card.display_classes] == ["background", "building"]  # border/contact fold into building
    assert card.resolution and card.resolution_range
    meta = card.metadata
    assert meta["training_data"] and "licence" in json.dumps(meta["training_data"])
    assert 0 < meta["validation"]["building_iou"] <= 1 and 0 <= meta["validation"]["polygon_f1_iou50"] <= 1
    path = SHIPPED_MODELS["buildings"]
    assert path.stat().st_size <= 25_000_000


def test_quickstart_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store the notebook without outputs"
    os.environ["GEOSEG_QUICKSTART_OUT"] = str(tmp_path)
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        os.environ.pop("GEOSEG_QUICKSTART_OUT", None)
    assert (tmp_path / "report" / "report.html").exists()
    assert any(o.get("output_type") == "display_data" for c in nb.cells for o in c.get("outputs", []))
