"""The two engines: threads in this process and Dask workers give the same bytes; devices; Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from support.nets import PixelNet, SmallConvNet, card_for, make_model, tiny_unet

import geoseg
from geoseg.cli import main
from geoseg.errors import ModelError
from geoseg.io.rasters import read_window
from geoseg.model.network import Model
from geoseg.prediction import plan as plan_module
from geoseg.prediction.blend import grid_weights
from geoseg.prediction.stitch import finish_votes, quantisation_scale, quantise_tile
from geoseg.tiling import PixelWindow, tile_grid


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of two by two tiles (of 48 or 64 px), so that small scenes have several blocks and seams."""
    monkeypatch.setattr(plan_module, "ACCUMULATOR_BYTES", 2 * 4 * 120 * 120)


@pytest.fixture(scope="module")
def kampala_crop(tmp_path_factory, shared_data) -> Path:
    tmp = tmp_path_factory.mktemp("engines")
    with rasterio.open(shared_data / "kampala" / "kampala_oam_cluster1_image.tif") as ds:
        win = Window(200, 100, 300, 230)
        profile = ds.profile | {"width": 300, "height": 230, "transform": ds.window_transform(win), "tiled": False}
        for key in ("blockxsize", "blockysize"):
            profile.pop(key, None)
        with rasterio.open(tmp / "scene.tif", "w", **profile) as dst:
            dst.write(ds.read(window=win))
    return tmp / "scene.tif"


def reference(model, scene: Path, tile: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Every tile through the network one by one, quantised and summed over the whole scene in numpy."""
    import torch

    from geoseg.model.preprocess import normalise

    with rasterio.open(scene) as ds:
        height, width = ds.height, ds.width
    tiles = tile_grid(height, width, tile, overlap)
    weights = grid_weights(height, width, tile, overlap, "hann")
    scale = quantisation_scale(height, width, tile, overlap)
    acc = np.zeros((model.card.num_classes, height, width), np.int32)
    for t in tiles:
        data, valid = read_window(str(scene), t.read, (1, 2, 3))
        with torch.inference_mode():
            x = torch.from_numpy(normalise(data, valid, model.card.normalization))[None]
            probs = torch.softmax(model.network(x), 1)
        q = quantise_tile(probs[0].numpy(), valid, weights.weights(t), scale)
        part = t.read.intersection(PixelWindow(0, 0, height, width))
        rows, cols = part.relative_to(t.read)
        acc[:, part.row_off : part.row_end, part.col_off : part.col_end] += q[:, rows, cols]
    return finish_votes(acc, model.card.class_ids)


def pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_local_engine_equals_the_numpy_reference_exactly(tmp_path, kampala_crop, small_blocks):
    model = make_model(PixelNet, seed=2, tile_size=48)
    geoseg.predict(kampala_crop, model, tmp_path / "ids.tif", confidence=tmp_path / "conf.tif", overlap=12,
                   batch_size=3)
    ids, conf = reference(model, kampala_crop, 48, 12)
    assert np.array_equal(pixels(tmp_path / "ids.tif"), ids)
    assert np.array_equal(pixels(tmp_path / "conf.tif"), conf)


def test_invalid_pixels_few_or_many_match_the_reference_exactly(tmp_path, kampala_crop, small_blocks, monkeypatch):
    """Nodata pixels scattered over the scene (zeroed by index) and a large nodata area (zeroed with the mask):
    the same inputs to the network and no votes there, as in the reference."""
    from geoseg.prediction.device import Predictor

    kinds = []
    holes = Predictor._holes
    monkeypatch.setattr(Predictor, "_holes", lambda self, v: kinds.append(holes(self, v)) or kinds[-1])
    with rasterio.open(kampala_crop) as ds:
        profile, data = ds.profile | {"nodata": 0}, ds.read()
    rng = np.random.default_rng(5)
    rows, cols = rng.integers(0, data.shape[1], 60), rng.integers(0, data.shape[2], 60)
    data[:, rows, cols] = 0  # a few black pixels in most tiles
    data[:, 150:, :90] = 0  # whole tiles and parts of tiles without data
    scene = tmp_path / "holes.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
    model = make_model(SmallConvNet, seed=4, tile_size=48)  # 3x3 convolutions: invalid inputs reach neighbours
    geoseg.predict(scene, model, tmp_path / "ids.tif", confidence=tmp_path / "conf.tif", overlap=12, batch_size=3)
    ids, conf = reference(model, scene, 48, 12)
    assert np.array_equal(ids == 255, (data == 0).all(axis=0))  # nodata exactly where the scene has none
    assert any(k is None for k in kinds) and any(k is not None for k in kinds)  # both ways of zeroing were used
    assert np.array_equal(pixels(tmp_path / "ids.tif"), ids)
    assert np.array_equal(pixels(tmp_path / "conf.tif"), conf)


@pytest.fixture
def two_worker_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes of one thread each, on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(sched_file)], stderr=subprocess.DEVNULL,
    )]
    try:
        for _ in range(300):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        procs += [subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file), "--nthreads",
             "1", "--host", "127.0.0.1", "--no-dashboard"], stderr=subprocess.DEVNULL,
        ) for _ in range(2)]
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_threads_and_two_dask_workers_write_the_same_bytes(tmp_path, kampala_crop, two_worker_cluster, small_blocks):
    model = tiny_unet(tile_size=64)
    outputs = {}
    for name, where in {"threads": {}, "dask": {"scheduler": two_worker_cluster}}.items():
        ids, conf = tmp_path / f"{name}.tif", tmp_path / f"{name}_conf.tif"
        geoseg.predict(kampala_crop, model, ids, confidence=conf, overlap=16, batch_size=3, **where)
        outputs[name] = ids.read_bytes(), conf.read_bytes()
    assert outputs["threads"] == outputs["dask"]
    assert {0, 1} <= set(np.unique(pixels(tmp_path / "threads.tif")).tolist())


class PoisonedNet(PixelNet):
    """PixelNet, but its logit for class 1 is ``value`` where band 1, normalised, is ``at`` (a rare value)."""

    def __init__(self, bands: int, classes: int, value: float, at: float) -> None:
        super().__init__(bands, classes)
        self.value, self.at = value, at

    def forward(self, x):
        import torch

        out = super().forward(x)
        spot = ((x[:, 0] - self.at).abs() < 1e-4)[:, None] & (torch.arange(out.shape[1]) == 1)[None, :, None, None]
        return out.masked_fill(spot, self.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_in_any_tile_fail_with_one_error_and_no_output(tmp_path, kampala_crop, small_blocks,
                                                                         value):
    """One non-finite logit, in one block of several, is a model error, whatever its sign; nothing is left."""
    with rasterio.open(kampala_crop) as ds:
        counts = np.bincount(ds.read(1).ravel(), minlength=256)
    valued = np.arange(256) > 0  # 0 is nodata
    rare = int(np.flatnonzero((counts > 0) & (counts <= 3) & valued)[0])  # 1-3 pixels: most blocks are clean
    at = (rare - 100.0) / 50.0  # the card's normalisation
    model = Model(PoisonedNet(3, 3, value, at).eval(), card_for(3, 3, tile_size=64))
    with pytest.raises(ModelError, match="non-finite"):
        geoseg.predict(kampala_crop, model, tmp_path / "out.tif", overlap=16)
    assert list(tmp_path.iterdir()) == []
    clean = Model(PoisonedNet(3, 3, 1e6, at).eval(), card_for(3, 3, tile_size=64))
    geoseg.predict(kampala_crop, clean, tmp_path / "ok.tif", overlap=16)
    with rasterio.open(kampala_crop) as ds:
        assert (pixels(tmp_path / "ok.tif")[ds.read(1) == rare] == 1).all()  # large finite logits are fine


def cli(*args: str):
    return CliRunner().invoke(main, ["-q", "predict", *args])


def test_device_cuda_n_parses_and_fails_cleanly_without_that_gpu(tmp_path, make_raster):
    import torch

    if torch.cuda.device_count() > 1:
        pytest.skip("this machine has a second GPU: --device cuda:1 would run")
    scene = make_raster("s.tif", np.zeros((3, 20, 20), np.uint8))
    model = tiny_unet(tile_size=32).save(tmp_path / "m.safetensors")
    result = cli(str(scene), "--model", str(model), "--out", str(tmp_path / "out.tif"), "--device", "cuda:1",
                 "--overlap", "4")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "cuda:1" in lines[0], result.output
    assert not (tmp_path / "out.tif").exists() and not list(tmp_path.glob("*geoseg-tmp*"))
    bad = cli(str(scene), "--model", str(model), "--out", str(tmp_path / "out.tif"), "--device", "gpu")
    assert bad.exit_code == 2 and "auto, cpu, cuda or cuda:N" in bad.output


def test_ctrl_c_exits_130_with_one_line_and_leaves_no_files(tmp_path, make_raster):
    rng = np.random.default_rng(0)
    scene = make_raster("big.tif", rng.integers(0, 255, (3, 1000, 1000), dtype=np.uint8))
    model = tiny_unet(tile_size=32).save(tmp_path / "m.safetensors")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "geoseg", "-q", "predict", str(scene), "--model", str(model), "--out",
         str(out_dir / "landcover.tif"), "--confidence", str(out_dir / "confidence.tif"), "--overlap", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not any(out_dir.iterdir()):  # staging files appear once predicting has begun
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "predict never started writing"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["Interrupted; no output was written."], stderr
    assert list(out_dir.iterdir()) == []
