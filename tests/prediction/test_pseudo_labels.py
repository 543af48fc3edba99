"""geoseg pseudo-label: confident predictions become training labels, the rest the ignore id."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin
from support.nets import PixelNet, make_model, tiny_unet

import geoseg
from geoseg.classes import NODATA
from geoseg.cli import main
from geoseg.errors import UsageError
from geoseg.model.card import ModelCard
from geoseg.prediction.pseudo_labels import (
    IGNORE_TAG,
    SNIPPET_NAME,
    confidence_cutoff,
    pseudo_label,
    pseudo_label_array,
)

TRANSFORM = from_origin(500000.0, 4000000.0, 0.5, 0.5)


def scene_array(height: int = 96, width: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (3, height, width), dtype=np.uint8)


def run_cli(*args: str):
    return CliRunner().invoke(main, ["-q", "pseudo-label", *args])


def test_cutoff_is_the_smallest_stored_confidence_at_the_threshold():
    assert confidence_cutoff(1.0) == 255
    assert confidence_cutoff(0.9) == 230  # 229.5 -> 230: 229/255 = 0.898 < 0.9
    assert confidence_cutoff(0.2) == 51  # exactly 51/255: kept
    assert confidence_cutoff(1e-9) == 1
    for bad in (0, -0.1, 1.01, float("nan")):
        with pytest.raises(UsageError):
            confidence_cutoff(bad)


def test_the_array_function_keeps_sure_pixels_and_nodata():
    ids = np.array([[0, 1, 2, NODATA]], dtype=np.uint8)
    conf = np.array([[230, 229, 255, 0]], dtype=np.uint8)
    out = pseudo_label_array(ids, conf, cutoff=230, ignore_id=NODATA)
    assert out.tolist() == [[0, NODATA, 2, NODATA]]
    out = pseudo_label_array(ids, conf, cutoff=230, ignore_id=7)
    assert out.tolist() == [[0, 7, 2, NODATA]] and out.dtype == np.uint8


def test_threshold_georeferencing_and_nodata(make_raster, tmp_path):
    data = scene_array()
    scene = make_raster("scene.tif", data, transform=TRANSFORM, nodata=0)
    data[:, :10, :10] = 0  # an invalid corner
    with rasterio.open(scene, "r+") as ds:
        ds.write(data)
    model = make_model(PixelNet, tile_size=32)
    # The reference: predict's own class ids and confidence.
    geoseg.predict(scene, model, tmp_path / "ids.tif", confidence=tmp_path / "conf.tif", tile_size=32, overlap=8)
    with rasterio.open(tmp_path / "ids.tif") as ds:
        ids = ds.read(1)
    with rasterio.open(tmp_path / "conf.tif") as ds:
        conf = ds.read(1)
    threshold = float(np.median(conf[ids != NODATA])) / 255  # about half the pixels are sure
    run = pseudo_label([scene], model, tmp_path / "labels", min_confidence=threshold,
                       options=_options(tile_size=32, overlap=8))
    out = tmp_path / "labels" / "scene.tif"
    assert run.results[0].labels == out and run.ignore_id == NODATA
    with rasterio.open(out) as got, rasterio.open(scene) as src:
        labels = got.read(1)
        assert (got.crs, got.transform, got.width, got.height) == (src.crs, src.transform, src.width, src.height)
        assert got.nodata == NODATA and got.dtypes[0] == "uint8"
        assert got.tags()[IGNORE_TAG] == str(NODATA)
    cutoff = confidence_cutoff(threshold)
    expected = np.where(ids == NODATA, NODATA, np.where(conf >= cutoff, ids, NODATA))
    np.testing.assert_array_equal(labels, expected)
    assert (labels[:10, :10] == NODATA).all()
    sure = (conf >= cutoff) & (ids != NODATA)
    assert 0 < sure.sum() < (ids != NODATA).sum()  # the threshold really split the pixels
    r = run.results[0]
    assert (r.labelled, r.ignored, r.invalid) == (int(sure.sum()), int(((conf < cutoff) & (ids != NODATA)).sum()),
                                                   int((ids == NODATA).sum()))
    assert not [p for p in (tmp_path / "labels").iterdir() if p.name not in ("scene.tif", SNIPPET_NAME)]


def _options(**kw):
    from geoseg.prediction.options import PredictOptions

    return PredictOptions(**kw)


def test_the_card_ignore_index_is_the_ignore_id(make_raster, tmp_path):
    scene = make_raster("s.tif", scene_array(48, 48), transform=TRANSFORM)
    card = ModelCard(classes=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], bands=["r", "g", "b"],
                     normalization={"mean": [100.0] * 3, "std": [50.0] * 3}, tile_size=32, ignore_index=0)
    model = geoseg.Model(PixelNet(3, 2).eval(), card)
    run = pseudo_label([scene], model, tmp_path / "out", min_confidence=1.0,
                       options=_options(tile_size=32, overlap=8))
    assert run.ignore_id == 0
    with rasterio.open(tmp_path / "out" / "s.tif") as ds:
        assert set(np.unique(ds.read(1)).tolist()) <= {0, 1, 2}
        assert ds.tags()[IGNORE_TAG] == "0"
    snippet = (tmp_path / "out" / SNIPPET_NAME).read_text()
    assert "\nignore_id: 0\n" in snippet


def test_a_failure_leaves_nothing_behind(make_raster, tmp_path):
    good = make_raster("good.tif", scene_array(40, 40), transform=TRANSFORM)
    two_bands = make_raster("bad.tif", scene_array(40, 40)[:2], transform=TRANSFORM)
    model = tiny_unet(tile_size=32).save(tmp_path / "m.safetensors")
    out = tmp_path / "labels"
    result = run_cli(str(good), str(two_bands), "--model", str(model), "--min-confidence", "0.5", "--out", str(out),
                     "--overlap", "8")
    assert result.exit_code == 1, result.output
    assert "expects 3" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # checked before any scene is predicted: not even the folder is made

    out.mkdir()  # a folder that was there stays, and empty, after a scene fails mid-read
    cut = make_raster("cut.tif", scene_array(40, 40), transform=TRANSFORM)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    result = run_cli(str(good), str(cut), "--model", str(model), "--min-confidence", "0.5", "--out", str(out),
                     "--overlap", "8")
    assert result.exit_code == 1 and "cut.tif" in result.output, result.output
    assert list(out.iterdir()) == []  # not even the first scene's labels, no temporary files


@pytest.mark.parametrize("args, message", [
    (["--min-confidence", "0"], "0<x<=1"),
    (["--min-confidence", "1.5"], "0<x<=1"),
    (["--min-confidence", "0.9", "--no-scene"], "at least one scene"),
    (["--min-confidence", "0.9", "--out-file"], "file"),
])
def test_usage_errors_exit_2(make_raster, tmp_path, args, message):
    scene = make_raster("s.tif", scene_array(40, 40), transform=TRANSFORM)
    out = tmp_path / "labels"
    if "--out-file" in args:
        out = tmp_path / "a_file"
        out.write_text("x")
    argv = [a for a in args if not a.startswith(("--no-", "--out-"))] + ["--out", str(out)]
    if "--no-scene" not in args:
        argv.insert(0, str(scene))
    result = run_cli(*argv)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_library_usage_errors(make_raster, tmp_path):
    a = make_raster("s.tif", scene_array(40, 40), transform=TRANSFORM)
    (tmp_path / "other").mkdir()
    b = make_raster("other/s.tif", scene_array(40, 40), transform=TRANSFORM)
    model = make_model(PixelNet, tile_size=32)
    with pytest.raises(UsageError, match="would both write s.tif"):
        pseudo_label([a, b], model, tmp_path / "out", min_confidence=0.5)
    with pytest.raises(UsageError, match="no scenes"):
        pseudo_label([], model, tmp_path / "out", min_confidence=0.5)


def test_existing_outputs_need_overwrite_then_end_to_end_training_data(make_raster, tmp_path):
    """Pseudo-label a scene with a model file through the CLI, then the snippet is a training config that loads
    and whose data preparation reads the labels, unsure pixels ignored."""
    from distributed import LocalCluster

    from geoseg.training.config import load_config
    from geoseg.training.data import prepare_training_data
    from geoseg.training.dataset import label_lut

    scene = make_raster("field.tif", scene_array(160, 160, seed=3), transform=TRANSFORM)
    model = tiny_unet(tile_size=32).save(tmp_path / "m.safetensors")
    out = tmp_path / "labels"
    args = [str(scene), "--model", str(model), "--min-confidence", "0.55", "--out", str(out), "--tile-size", "32",
            "--overlap", "8"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    again = run_cli(*args)
    assert again.exit_code == 1 and "already exists" in again.output
    assert run_cli(*args, "--overwrite").exit_code == 0

    snippet = out / SNIPPET_NAME
    with rasterio.open(out / "field.tif") as ds:
        labels = ds.read(1)
    assert (labels == NODATA).any() and (labels != NODATA).any()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        cfg = load_config(snippet, overrides=[
            "tile_size=32", "model.arch_params={encoder_depth: 3, decoder_channels: [16, 8, 4]}",
            "sampler.min_labelled_share=0.01", f"cluster.scheduler={cluster.scheduler_address}",
        ])
        assert cfg.scenes[0].image == scene.resolve() and cfg.scenes[0].labels == (out / "field.tif").resolve()
        assert cfg.ignore_id is None and [c.name for c in cfg.classes] == ["class0", "class1"]
        data = prepare_training_data(cfg, tmp_path / "run")
    assert data.train_tiles
    lut = label_lut([0, 1], cfg.ignore_id)
    # Training counts exactly the confident pixels; the unsure ones (255) are ignored.
    assert data.scene_class_counts().sum() == int((labels != NODATA).sum())
    assert lut[NODATA] < 0


def test_remote_scenes_are_refused(tmp_path):
    result = run_cli("https://example.com/scene.tif", "--min-confidence", "0.9", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "download it first" in result.output


def test_part_classes_are_written_as_their_object_class(make_raster, tmp_path):
    scene = make_raster("p.tif", scene_array(48, 48, seed=5), transform=TRANSFORM)
    card = ModelCard(classes=["background", "building", "building_border", "building_contact"], bands=["r", "g", "b"],
                     normalization={"mean": [100.0] * 3, "std": [50.0] * 3}, tile_size=32,
                     parts=[{"of": 1, "border": 2, "contact": 3}])
    net = PixelNet(3, 4, seed=2).eval()
    with torch.no_grad():  # make border and contact the likeliest parts somewhere
        net.body[-1].bias[2:] += 2.0
    run = pseudo_label([scene], geoseg.Model(net, card), tmp_path / "out", min_confidence=0.3,
                       options=_options(tile_size=32, overlap=8))
    assert [c.name for c in run.classes] == ["background", "building"]
    with rasterio.open(tmp_path / "out" / "p.tif") as ds:
        values = set(np.unique(ds.read(1)).tolist())
        assert "building_border" not in ds.tags()["GEOSEG_CLASSES"]
    assert 1 in values and values <= {0, 1, NODATA}
    assert not (tmp_path / "out" / "p.parts.tif").exists()
