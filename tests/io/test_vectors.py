"""The one vector loader: reprojection, the make_valid policy, what is dropped; shared by training and evaluation."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point, Polygon, box

from geoseg.errors import InputError, LabelError
from geoseg.evaluation.truth import VectorTruth
from geoseg.io.rasters import inspect_scene
from geoseg.io.vectors import MAKE_VALID, read_polygon_layer
from geoseg.tiling import PixelWindow
from geoseg.training.labels import prepare_labels

X0, Y0 = 500000.0, 4000000.0
UTM = "EPSG:32633"
# A shell of 20 x 20 m with a "hole" drawn half outside it: invalid.  The policy keeps the shell minus the hole
# (an L of 300 m²); make_valid's default "linework" method would also keep the part of the hole outside the shell.
HOLE_OUTSIDE = Polygon(
    box(X0 + 10, Y0 - 30, X0 + 30, Y0 - 10).exterior.coords, [box(X0 + 20, Y0 - 40, X0 + 40, Y0 - 20).exterior.coords]
)
# A bow tie: two triangles of 100 m² meeting at a point.
BOWTIE = Polygon([(X0 + 40, Y0 - 40), (X0 + 60, Y0 - 60), (X0 + 60, Y0 - 40), (X0 + 40, Y0 - 60)])


def write(path, geoms, ids, crs=UTM):
    gpd.GeoDataFrame({"class_id": ids}, geometry=geoms, crs=crs).to_file(path, driver="GPKG")
    return path


def test_the_policy_is_make_valid_structure():
    assert MAKE_VALID == {"method": "structure", "keep_collapsed": False}
    assert not HOLE_OUTSIDE.is_valid and not BOWTIE.is_valid
    assert shapely.make_valid(HOLE_OUTSIDE, **MAKE_VALID).area == pytest.approx(300)
    assert shapely.make_valid(HOLE_OUTSIDE).area == pytest.approx(600)  # what the policy avoids


def test_invalid_polygons_are_repaired_and_counted(tmp_path):
    path = write(tmp_path / "l.gpkg", [HOLE_OUTSIDE, BOWTIE, box(X0, Y0 - 5, X0 + 5, Y0)], [1, 2, 1])
    layer = read_polygon_layer(path, target_crs=UTM, what="labels")
    assert (layer.repaired, layer.dropped_empty, layer.dropped_not_polygon, layer.reprojected) == (2, 0, 0, False)
    geoms = layer.frame.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert shapely.equals(geoms[0], shapely.make_valid(HOLE_OUTSIDE, **MAKE_VALID))
    assert geoms[0].area == pytest.approx(300) and geoms[1].area == pytest.approx(200)
    assert list(layer.frame.class_id) == [1, 2, 1]
    assert any("2 invalid geometries repaired with make_valid" in n for n in layer.notes)


def test_points_lines_empty_and_collapsed_features_are_dropped_and_counted(tmp_path):
    flat = Polygon([(X0, Y0), (X0 + 1, Y0 - 1), (X0 + 2, Y0 - 2), (X0, Y0)])  # a ring with no area
    geoms = [box(X0, Y0 - 5, X0 + 5, Y0), Point(X0 + 1, Y0 - 1), LineString([(X0, Y0), (X0 + 3, Y0 - 3)]), flat,
             Polygon()]
    path = write(tmp_path / "l.gpkg", geoms, [1, 1, 1, 1, 1])
    layer = read_polygon_layer(path, target_crs=UTM)
    assert len(layer.frame) == 1 and layer.frame.geometry.iloc[0].area == pytest.approx(25)
    assert (layer.dropped_empty, layer.dropped_not_polygon, layer.repaired) == (1, 3, 1)


def test_reprojected_explicitly_and_noted(tmp_path):
    square = gpd.GeoSeries([box(X0 + 10, Y0 - 40, X0 + 30, Y0 - 30)], crs=UTM).to_crs("EPSG:4326")
    path = write(tmp_path / "l.gpkg", list(square), [1], crs="EPSG:4326")
    layer = read_polygon_layer(path, target_crs=UTM, what="truth")
    assert layer.reprojected and layer.source_crs == "EPSG:4326"
    assert layer.frame.crs.to_epsg() == 32633
    assert layer.frame.geometry.iloc[0].area == pytest.approx(200, rel=1e-6)
    assert any("reprojected from EPSG:4326 to EPSG:32633" in n for n in layer.notes)


def test_failures_raise_the_callers_error_type(tmp_path):
    no_crs = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame({"class_id": [1]}, geometry=[box(0, 0, 1, 1)]).to_file(no_crs, driver="GPKG")
    with pytest.raises(InputError, match="has no CRS"):
        read_polygon_layer(no_crs, target_crs=UTM)
    with pytest.raises(LabelError, match="vector labels .* has no CRS"):
        read_polygon_layer(no_crs, target_crs=UTM, what="vector labels", error=LabelError)
    with pytest.raises(LabelError, match="layer 'nope' could not be read"):
        read_polygon_layer(no_crs, target_crs=UTM, layer="nope", error=LabelError)
    (tmp_path / "labels.txt").write_text("1,2,3")
    with pytest.raises(LabelError, match="is not a vector file"):
        read_polygon_layer(tmp_path / "labels.txt", target_crs=UTM, error=LabelError)


def test_training_and_evaluation_see_the_same_repaired_polygons(make_raster, tmp_path):
    """A self-intersecting label burnt for training and rasterised as evaluation truth: the same pixels."""
    pixels = np.zeros((3, 70, 70), np.uint8)
    image = inspect_scene(make_raster("image.tif", pixels, transform=from_origin(X0, Y0, 1, 1)))
    labels = write(tmp_path / "labels.gpkg", [HOLE_OUTSIDE, BOWTIE], [1, 2])
    prepared = prepare_labels(image, labels, class_ids=[0, 1, 2], ignore_id=None, fill=0, cache_dir=tmp_path / "run")
    with rasterio.open(prepared.path) as ds:
        training = ds.read(1)
    truth = VectorTruth(labels, image, background=0)
    evaluation = truth.read(PixelWindow(0, 0, 70, 70))
    np.testing.assert_array_equal(training, evaluation)
    assert (training == 1).sum() == 300  # the L of the structure repair, not the 600 m² of the linework one
    assert 150 < (training == 2).sum() < 250
    assert prepared.report.repaired_invalid == 2
    repaired = shapely.make_valid(HOLE_OUTSIDE, **MAKE_VALID)
    assert any(shapely.equals(p, repaired) for p in truth.polygons(1))
