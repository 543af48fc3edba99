"""Shared fixtures of the evaluation tests: a report on the real New Brunswick tile."""

from __future__ import annotations

import geopandas as gpd
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.features import shapes as raster_shapes
from shapely.geometry import shape
from support.rasters import write_raster

from geoseg.classes import ClassInfo, classes_to_json
from geoseg.cli import main


@pytest.fixture(scope="session")
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
