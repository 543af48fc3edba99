"""Scenes read over HTTP by byte ranges: an https:// or /vsicurl/ COG URL works for predict, nothing else remote."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.shutil import copy as rio_copy
from support.http_server import serve_folder
from support.nets import make_model
from support.rasters import write_raster

import geoseg
from geoseg.errors import InputError
from geoseg.io.rasters import inspect_scene, open_raster
from geoseg.io.remote import gdal_path, is_remote, remote_url


@pytest.fixture(scope="module")
def cog_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("www")
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (3, 300, 400), dtype=np.uint8)
    write_raster(folder / "plain.tif", data)
    rio_copy(folder / "plain.tif", folder / "scene.tif", driver="COG", BLOCKSIZE=128, COMPRESS="DEFLATE")
    (folder / "plain.tif").unlink()
    return folder


def test_predict_reads_a_remote_cog_by_ranges(cog_folder, tmp_path):
    model = make_model(tile_size=64)
    local = geoseg.predict(cog_folder / "scene.tif", model, tmp_path / "local.tif", overlap=8)
    with serve_folder(cog_folder) as (base, served):
        remote = geoseg.predict(f"{base}/scene.tif?sig=abc", model, tmp_path / "remote.tif", overlap=8)
        vsi = geoseg.predict(f"/vsicurl/{base}/scene.tif", model, tmp_path / "vsi.tif", overlap=8)
    with rasterio.open(local.output) as a, rasterio.open(remote.output) as b, rasterio.open(vsi.output) as c:
        assert np.array_equal(a.read(), b.read()) and np.array_equal(a.read(), c.read())
        assert (b.crs, b.transform) == (a.crs, a.transform)
    gets = [r for r in served.requests if r[0] == "GET"]
    assert gets and all(status == 206 and rng for _, _, status, rng, _ in gets), gets[:5]
    size = (cog_folder / "scene.tif").stat().st_size
    assert all(sent < size for *_, sent in gets)  # never the whole file in one answer
    assert {path.split("?")[0] for _, path, *_ in served.requests} == {"/scene.tif"}  # no sidecar was asked for


def test_scene_info_keeps_the_url(cog_folder):
    with serve_folder(cog_folder) as (base, _):
        info = inspect_scene(f"{base}/scene.tif")
        assert info.path == f"{base}/scene.tif" and (info.width, info.height, info.count) == (400, 300, 3)
        with open_raster(f"/vsicurl/{base}/scene.tif") as ds:
            assert ds.block_shapes[0] == (128, 128)


def test_a_missing_remote_file_is_a_clear_error(cog_folder):
    with serve_folder(cog_folder) as (base, _):
        with pytest.raises(InputError, match="cannot be read as a GeoTIFF over HTTP"):
            inspect_scene(f"{base}/missing.tif")


@pytest.mark.parametrize("path", [
    "/vsicurl/file:///etc/passwd", "/vsicurl/ftp://example.com/a.tif", "/vsizip/a.zip/b.tif", "/vsis3/bucket/a.tif",
    "file:///etc/passwd", "/vsicurl?url=http://example.com/a.tif", "http:///nohost.tif",
])
def test_only_http_urls_are_remote(path):
    with pytest.raises(InputError):
        inspect_scene(path)


def test_url_forms():
    assert is_remote("https://example.com/a.tif") and is_remote("/vsicurl/http://example.com/a.tif?x=1")
    assert not is_remote("scene.tif") and not is_remote("/vsicurl/file:///a.tif")
    assert remote_url("/vsicurl/https://example.com/a.tif") == "https://example.com/a.tif"
    assert gdal_path("https://example.com/a.tif") == "/vsicurl/https://example.com/a.tif"


def test_cli_predict_takes_a_url(cog_folder, tmp_path):
    from click.testing import CliRunner
    from support.nets import tiny_unet

    from geoseg.cli import main

    model = tiny_unet().save(tmp_path / "m.safetensors")
    with serve_folder(cog_folder) as (base, _):
        result = CliRunner().invoke(main, ["-q", "predict", f"{base}/scene.tif", "--model", str(model),
                                           "--out", str(tmp_path / "cli.tif"), "--overlap", "4"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "cli.tif") as ds:
        assert (ds.width, ds.height) == (400, 300)
