"""predict on real Dask clusters (worker processes, a separately started scheduler) and its COG output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from support.nets import tiny_unet

import geoseg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene_and_model(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("cluster")
    with rasterio.open(shared_data / "kampala" / "kampala_oam_cluster1_image.tif") as ds:
        win = Window(0, 0, 300, 200)
        profile = ds.profile | {"width": 300, "height": 200, "transform": ds.window_transform(win), "tiled": False}
        for key in ("blockxsize", "blockysize"):
            profile.pop(key, None)
        with rasterio.open(tmp / "scene.tif", "w", **profile) as dst:
            dst.write(ds.read(window=win))
    model = tiny_unet(tile_size=64).save(tmp / "model.safetensors")
    return tmp / "scene.tif", model


@pytest.fixture
def external_cluster(tmp_path):
    """``dask scheduler`` and ``dask worker`` started as separate processes on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(sched_file)], stderr=subprocess.DEVNULL)
    worker = None
    try:
        for _ in range(200):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(sched_file), "--nthreads", "2", "--host", "127.0.0.1", "--no-dashboard"],
                                  stderr=subprocess.DEVNULL)
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def pixels(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_local_processes_and_external_scheduler_agree(tmp_path, scene_and_model, external_cluster):
    scene, model = scene_and_model
    geoseg.predict(scene, model, tmp_path / "local.tif", overlap=16, workers=2, batch_size=2)
    geoseg.predict(scene, model, tmp_path / "remote.tif", overlap=16, scheduler=external_cluster, batch_size=3)
    local, remote = pixels(tmp_path / "local.tif"), pixels(tmp_path / "remote.tif")
    assert local.shape == (200, 300)
    assert len(np.unique(local)) >= 1
    assert (local == remote).all()


def test_output_is_a_valid_cog_that_gdal_opens(tmp_path, scene_and_model):
    from rio_cogeo.cogeo import cog_validate

    scene, model = scene_and_model
    out = tmp_path / "cog.tif"
    geoseg.predict(scene, model, out, confidence=tmp_path / "conf.tif", overlap=16, workers=1)
    for path in (out, tmp_path / "conf.tif"):
        valid, errors, _ = cog_validate(str(path), strict=True)
        assert valid, errors
    gdalinfo = shutil.which("gdalinfo")
    assert gdalinfo, "GDAL's gdalinfo (Debian gdal-bin) is needed; .ci/run installs it"
    info = json.loads(subprocess.run([gdalinfo, "-json", str(out)], capture_output=True, text=True, check=True).stdout)
    band = info["bands"][0]
    assert info["size"] == [300, 200]
    assert band["noDataValue"] == 255 and band["colorInterpretation"] == "Palette"
    assert "GEOSEG_CLASSES" in info["metadata"][""]
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    assert not list(tmp_path.glob("*geoseg-tmp*"))


@pytest.mark.parametrize("arch,encoder,params", [
    ("deeplabv3plus", "resnet18", {}),
    ("unet", "resnet18", {"decoder_attention_type": "scse"}),
    ("segformer", "mit_b0", {}),
])
def test_each_architecture_round_trips_through_a_model_file(tmp_path, arch, encoder, params):
    import torch
    from support.nets import card_for

    from geoseg.model.network import create_network

    card = card_for(bands=4, classes=3, architecture=arch, encoder=encoder, arch_params=params, tile_size=64)
    net = create_network(card).eval()
    path = geoseg.Model(net, card).save(tmp_path / f"{arch}.safetensors")
    loaded = geoseg.load_model(path)
    assert loaded.card == card
    x = torch.randn(1, 4, 64, 64)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded.network(x))
    assert geoseg.read_card(path) == card


def test_half_precision_weights_load_back_close(tmp_path):
    import torch
    from support.nets import tiny_unet

    model = tiny_unet(tile_size=32)
    full = model.save(tmp_path / "full.safetensors")
    half = model.save(tmp_path / "half.safetensors", weights_dtype="float16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = geoseg.load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.network.parameters())
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.network(x), model.network(x), atol=2e-2, rtol=2e-2)
