"""GDAL touches only the files the user named: no sidecars, no VRT indirection, no network."""

from __future__ import annotations

import numpy as np
import pytest
from support import hostile as h

from geoseg.errors import InputError, LabelError
from geoseg.io.rasters import inspect_scene, open_raster, read_window
from geoseg.io.vectors import list_polygon_layers, read_polygon_layer
from geoseg.safety.gdal import check_vector_format
from geoseg.tiling import PixelWindow


def _mask(path):
    with open_raster(path) as ds:
        return ds.dataset_mask()


def test_a_msk_sidecar_reading_a_url_is_never_opened(tmp_path, canary):
    url, hits = canary
    scene = h.write_scene(tmp_path / "scene.tif", size=64)
    h.write_msk_sidecar(scene, f"/vsicurl/{url}/mask.tif")
    assert _mask(scene).min() == 255  # all valid: the sidecar was not used
    data, valid = read_window(str(scene), PixelWindow(0, 0, 64, 64), (1, 2, 3))
    assert valid.all() and data.shape == (3, 64, 64)
    assert hits == []


def test_a_msk_sidecar_reading_another_file_is_never_opened(tmp_path):
    scene = h.write_scene(tmp_path / "scene.tif", size=64)
    secret = h.write_scene(tmp_path / "secret.tif", size=64, bands=1)
    h.write_msk_sidecar(scene, str(secret))
    import rasterio

    with rasterio.open(scene) as ds:  # plain GDAL uses the sidecar: the fixture is real
        assert ds.dataset_mask().min() < 255
    assert _mask(scene).min() == 255


def test_an_aux_xml_sidecar_is_neither_read_nor_written(tmp_path):
    raster = h.write_class_raster(tmp_path / "lc.tif")
    sidecar = h.write_aux_xml_sidecar(raster, classes="{{{ not json")
    with open_raster(raster) as ds:
        assert ds.tags()["GEOSEG_CLASSES"].startswith("[")  # the file's own tag, not the sidecar's
    bare = h.write_scene(tmp_path / "bare.tif", size=32)
    with open_raster(bare) as ds:
        ds.stats(indexes=[1], approx=True)  # plain GDAL stores these in bare.tif.aux.xml
    assert not (tmp_path / "bare.tif.aux.xml").exists()
    assert sidecar.exists()


def test_a_vrt_named_tif_is_not_opened(tmp_path):
    secret = h.write_scene(tmp_path / "secret.tif", size=64)
    sneaky = h.write_vrt_as_tif(tmp_path / "sneaky.tif", secret)
    with pytest.raises(InputError, match="sneaky.tif.*not a readable GeoTIFF"):
        inspect_scene(sneaky)


@pytest.mark.parametrize("text", ["/vsicurl/http://127.0.0.1:9/x.tif", "<VRTDataset/>", "x.tif?a=1", "a:::b"])
def test_gdal_syntax_is_not_a_path(text):
    with pytest.raises(InputError):
        open_raster(text)


def test_special_files_are_refused(tmp_path):
    (tmp_path / "folder.tif").mkdir()
    h.make_fifo(tmp_path / "fifo.tif")
    for path in (tmp_path / "folder.tif", tmp_path / "fifo.tif", "/dev/zero"):
        with pytest.raises(InputError, match="not a file"):
            open_raster(path)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".fgb", ".shp"])
def test_an_ogr_vrt_under_a_vector_suffix_is_refused(tmp_path, canary, suffix):
    url, hits = canary
    sneaky = h.write_ogr_vrt(tmp_path / f"truth{suffix}", f"/vsicurl/{url}/labels.gpkg")
    with pytest.raises(InputError, match=r"holds XML \(an OGR VRT"):
        read_polygon_layer(sneaky, target_crs=h.CRS, what="truth")
    with pytest.raises(LabelError, match="OGR VRT"):
        read_polygon_layer(sneaky, target_crs=h.CRS, what="vector labels", error=LabelError)
    with pytest.raises(InputError, match="OGR VRT"):
        list_polygon_layers(sneaky)
    assert hits == []


def test_real_vector_files_pass_the_format_check(tmp_path):
    for name, driver in (("a.gpkg", "GPKG"), ("a.geojson", "GeoJSON"), ("a.fgb", "FlatGeobuf"),
                         ("a.shp", "ESRI Shapefile")):
        path = h.write_polygons(tmp_path / name, driver=driver)
        assert check_vector_format(path, "truth") == driver
        layer = read_polygon_layer(path, target_crs=h.CRS)
        assert len(layer.frame) == 3
    (tmp_path / "bom.geojson").write_bytes(b"\xef\xbb\xbf  " + (tmp_path / "a.geojson").read_bytes())
    assert check_vector_format(tmp_path / "bom.geojson", "truth") == "GeoJSON"


def test_a_mislabelled_vector_file_is_refused(tmp_path):
    geojson = h.write_polygons(tmp_path / "a.geojson", driver="GeoJSON")
    renamed = tmp_path / "a.gpkg"
    renamed.write_bytes(geojson.read_bytes())
    with pytest.raises(InputError, match="named .gpkg but holds something else"):
        check_vector_format(renamed, "truth")
    random = h.write_random_bytes(tmp_path / "r.fgb")
    with pytest.raises(InputError, match="FlatGeobuf"):
        check_vector_format(random, "truth")


def test_reading_masks_still_works(tmp_path):
    """The internal mask and nodata still mark invalid pixels; only sidecars are ignored."""
    data = np.full((3, 32, 32), 100, np.uint8)
    data[:, :4, :4] = 0
    path = h.write_scene(tmp_path / "nodata.tif", size=32, nodata=0)
    import rasterio

    with rasterio.open(path, "r+") as ds:
        ds.write(data)
    _, valid = read_window(str(path), PixelWindow(0, 0, 32, 32), (1, 2, 3))
    assert not valid[:4, :4].any() and valid[8:, 8:].all()
