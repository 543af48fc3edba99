"""Training labels: vector labels reprojected and burnt onto the image grid, raster labels checked, clear errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from geoseg.classes import NODATA
from geoseg.errors import LabelError
from geoseg.io.rasters import inspect_scene
from geoseg.tiling import PixelWindow
from geoseg.training.labels import prepare_labels, read_label_window
from geoseg.training.tile_index import BandMoments, SceneSource, TileIndex, check_label_values

# A 100 x 80 px image, 1 m pixels, UTM 33N; its top-left corner is (500000, 4000000).
X0, Y0 = 500000.0, 4000000.0


@pytest.fixture
def image(make_raster):
    data = np.full((3, 80, 100), 100, dtype=np.uint8)
    return inspect_scene(make_raster("image.tif", data, transform=from_origin(X0, Y0, 1.0, 1.0)))


def write_vector(path, geoms, ids, crs="EPSG:32633"):
    gpd.GeoDataFrame({"class_id": ids}, geometry=geoms, crs=crs).to_file(path, driver="GPKG")
    return path


def burn(image, labels, tmp_path, **kw):
    kw.setdefault("class_ids", [0, 1, 2])
    kw.setdefault("ignore_id", None)
    kw.setdefault("fill", 0)
    prepared = prepare_labels(image, labels, cache_dir=tmp_path / "run", **kw)
    with rasterio.open(prepared.path) as ds:
        return prepared, ds.read(1)


def test_vector_labels_in_another_crs_are_reprojected_onto_the_grid(image, tmp_path):
    # a 20 x 10 m building 10 m right and 30 m below the corner, given in WGS 84
    square = gpd.GeoSeries([box(X0 + 10, Y0 - 40, X0 + 30, Y0 - 30)], crs="EPSG:32633").to_crs("EPSG:4326")
    path = write_vector(tmp_path / "labels.gpkg", list(square), [1], crs="EPSG:4326")
    prepared, burnt = burn(image, path, tmp_path)
    assert prepared.report.reprojected_from == "EPSG:4326"
    assert burnt.shape == (80, 100)
    rows, cols = np.nonzero(burnt == 1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (30, 39, 10, 29)
    assert (burnt == 0).sum() == 80 * 100 - 200


def test_labels_outside_the_image_are_counted(image, tmp_path):
    geoms = [
        box(X0 + 1, Y0 - 5, X0 + 5, Y0 - 1),
        box(X0 + 90, Y0 - 10, X0 + 120, Y0 - 5),
        box(X0 + 500, Y0 - 10, X0 + 510, Y0 - 5),
    ]
    prepared, burnt = burn(image, write_vector(tmp_path / "l.gpkg", geoms, [1, 2, 1]), tmp_path)
    assert prepared.report.features == 3
    assert prepared.report.dropped_outside == 1
    assert prepared.report.clipped_at_edge == 1
    assert (burnt == 2).sum() == 10 * 5


def test_rasterised_labels_are_cached_and_reused(image, tmp_path):
    path = write_vector(tmp_path / "l.gpkg", [box(X0 + 1, Y0 - 5, X0 + 5, Y0 - 1)], [1])
    first, _ = burn(image, path, tmp_path)
    second, _ = burn(image, path, tmp_path)
    assert first.path == second.path and first.report == second.report
    third, _ = burn(image, path, tmp_path, fill=2)  # other inputs, other file
    assert third.path != first.path


def test_labels_that_miss_the_image_are_an_error(image, tmp_path):
    path = write_vector(tmp_path / "far.gpkg", [box(X0 + 5000, Y0 - 10, X0 + 5010, Y0)], [1])
    with pytest.raises(LabelError, match="overlap the image"):
        burn(image, path, tmp_path)


def test_a_class_id_not_in_the_scheme_is_an_error(image, tmp_path):
    path = write_vector(tmp_path / "l.gpkg", [box(X0 + 1, Y0 - 5, X0 + 5, Y0 - 1)], [7])
    with pytest.raises(LabelError, match=r"class ids \[7\].*not in the class scheme"):
        burn(image, path, tmp_path)


def test_a_missing_class_column_names_the_columns(image, tmp_path):
    path = write_vector(tmp_path / "l.gpkg", [box(X0 + 1, Y0 - 5, X0 + 5, Y0 - 1)], [1])
    with pytest.raises(LabelError, match="no column 'kind'.*class_id"):
        burn(image, path, tmp_path, class_column="kind")


def test_invalid_polygons_are_repaired(image, tmp_path):
    bowtie = Polygon([(X0 + 10, Y0 - 10), (X0 + 30, Y0 - 30), (X0 + 30, Y0 - 10), (X0 + 10, Y0 - 30)])
    assert not bowtie.is_valid
    prepared, burnt = burn(image, write_vector(tmp_path / "l.gpkg", [bowtie], [1]), tmp_path)
    assert prepared.report.repaired_invalid == 1
    assert 150 < (burnt == 1).sum() < 250  # two triangles of 100 m2 each


def test_unlabelled_pixels_need_a_fill_or_an_ignore_id(image, tmp_path):
    path = write_vector(tmp_path / "l.gpkg", [box(X0 + 1, Y0 - 5, X0 + 5, Y0 - 1)], [1])
    with pytest.raises(LabelError, match="fill"):
        burn(image, path, tmp_path, fill=None)
    _, burnt = burn(image, path, tmp_path, fill=None, ignore_id=9)
    assert set(np.unique(burnt)) == {1, 9}


def test_raster_labels_must_be_on_the_image_grid(image, make_raster):
    shifted = make_raster("shifted.tif", np.zeros((80, 100), np.uint8), transform=from_origin(X0 + 3, Y0, 1.0, 1.0))
    with pytest.raises(LabelError, match="not on the grid"):
        prepare_labels(image, shifted, class_ids=[0, 1], ignore_id=None, cache_dir="unused")
    smaller = make_raster("small.tif", np.zeros((40, 100), np.uint8), transform=from_origin(X0, Y0, 1.0, 1.0))
    with pytest.raises(LabelError, match="not on the grid"):
        prepare_labels(image, smaller, class_ids=[0, 1], ignore_id=None, cache_dir="unused")
    good = make_raster("good.tif", np.zeros((80, 100), np.uint8), transform=from_origin(X0, Y0, 1.0, 1.0))
    assert prepare_labels(image, good, class_ids=[0, 1], ignore_id=None, cache_dir="unused").report.kind == "raster"


def test_missing_label_file_is_an_error(image, tmp_path):
    with pytest.raises(LabelError, match="do not exist"):
        prepare_labels(image, tmp_path / "nope.gpkg", class_ids=[0, 1], ignore_id=None, cache_dir=tmp_path)


def test_label_windows_pad_outside_the_raster(make_raster):
    path = make_raster("l.tif", np.arange(16, dtype=np.uint8).reshape(4, 4) % 3)
    window = read_label_window(str(path), PixelWindow(2, 2, 4, 4))
    assert window.shape == (4, 4)
    assert (window[2:, :] == NODATA).all() and (window[:, 2:] == NODATA).all()
    assert np.array_equal(window[:2, :2], (np.arange(16).reshape(4, 4) % 3)[2:, 2:])


def test_unknown_values_in_label_rasters_are_an_error():
    scene = SceneSource("image.tif", "labels.tif", (1, 2, 3), 10, 10)
    index = TileIndex(64, 32, (scene,), (), ({0: 10, 1: 5, 7: 3, NODATA: 2},), BandMoments(0, (0.0,), (0.0,)))
    with pytest.raises(LabelError, match=r"labels.tif.*7 \(3 px\)"):
        check_label_values(index, [0, 1], None)
    check_label_values(index, [0, 1], 7)  # the ignore id is fine
    assert TileIndex.from_json(index.to_json()) == index
