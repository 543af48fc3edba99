"""A short real training run on the New Brunswick sample scene, through the CLI, then predict with the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geoseg
from geoseg.cli import main
from geoseg.training.api import report_path_for, run_dir_for

REPO = Path(__file__).resolve().parents[2]


def current_umask() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
TINY = [
    "tile_size=64",
    "model.architecture=unet",
    "model.encoder=resnet18",
    "model.arch_params.decoder_attention_type=scse",
    "sampler.samples_per_epoch=16",
    "trainer.epochs=2",
    "trainer.batch_size=8",
    "cluster.workers=1",
    "loss=[{kind: ce, class_weights: inverse_frequency}, {kind: dice, weight: 0.5}]",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("train")
    out = folder / "nb.safetensors"
    args = ["-q", "train", "--config", str(REPO / "configs/train/new_brunswick.yaml"), "--out", str(out),
            "--set", f"data_root={shared_data}"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    # The weights as first trained: resuming with more epochs (test_resume_...) replaces the model file.
    shutil.copy(out, folder / "first-run.safetensors")
    return out, args


@pytest.mark.slow
def test_training_writes_a_complete_model_and_report(trained, shared_data):
    out, _ = trained
    model = geoseg.load_model(out)
    card = model.card
    assert [c.id for c in card.classes] == [1, 2, 3, 4, 5]
    assert [c.name for c in card.classes][:2] == ["building", "vegetation"]
    assert card.bands == ("red", "green", "blue") and card.dtype == "uint8"
    assert card.architecture == "unet" and card.encoder == "resnet18"
    assert card.arch_params == {"decoder_attention_type": "scse"}
    assert card.tile_size == 64 and card.nodata == "mask" and card.ignore_index == 0
    assert card.resolution == pytest.approx(0.5) and card.resolution_range == (pytest.approx(0.5), pytest.approx(0.5))
    with rasterio.open(shared_data / "new_brunswick/nb_1of2_image.tif") as ds:
        data = ds.read().reshape(3, -1).astype(np.float64)
    assert card.normalization.mean == pytest.approx(data.mean(axis=1).tolist(), rel=1e-6)
    assert card.normalization.std == pytest.approx(data.std(axis=1, ddof=1).tolist(), rel=1e-6)
    meta = card.metadata
    assert meta["training_data"][0]["image"].endswith("nb_1of2_image.tif")
    assert meta["config"]["sampler"]["kind"] == "balanced"
    assert set(meta["metrics"]["classes"]) == {"building", "vegetation", "road", "hydro", "train"}

    report = json.loads(report_path_for(out).read_text())
    assert report_path_for(out).name == "nb.report.json"
    assert len(report["epochs"]) == 2
    for epoch in report["epochs"]:
        assert epoch["train_loss"] > 0 and epoch["val_loss"] > 0
        assert set(epoch["classes"]["building"]) == {"iou", "precision", "recall", "f1", "support"}
    shares = report["class_share"]
    assert set(shares) == {"training_scenes", "training_tiles", "sampled_expected", "sampled"}
    assert sum(shares["sampled"].values()) == pytest.approx(1.0)
    assert report["labels_dropped_outside_images"] == 0
    assert report["tiles"]["drawn"] == 32
    assert report["class_weights"]["0:ce"][4] == 1.0  # 'train' never occurs
    assert (run_dir_for(out) / "last.ckpt").exists()
    for path in (out, report_path_for(out)):  # the usual permissions, not the owner-only ones of a temporary file
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert report["best"]["val_miou"] == max(e["val_miou"] for e in report["epochs"])


@pytest.mark.slow
def test_the_trained_model_predicts_a_scene(trained, shared_data, tmp_path):
    out, _ = trained
    result = geoseg.predict(shared_data / "new_brunswick/nb_1of2_image.tif", out, tmp_path / "landcover.tif",
                            overlap=16, workers=1)
    with rasterio.open(result.output) as ds:
        classes = ds.read(1)
        assert ds.crs.to_epsg() == 2953 and classes.shape == (341, 280)
    assert set(np.unique(classes).tolist()) <= {1, 2, 3, 4, 5}


@pytest.mark.slow
def test_resume_continues_from_the_run_checkpoint(trained):
    out, args = trained
    runner = CliRunner()
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "--overwrite" in result.output
    changed = runner.invoke(main, [*args, "--resume", "--set", "trainer.batch_size=4"])
    assert changed.exit_code == 2 and "config differs" in changed.output
    # The run finished its 2 epochs: resuming loads last.ckpt (weights only) and has nothing left to do.
    before = json.loads(report_path_for(out).read_text())["epochs"]
    resumed = runner.invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    after = json.loads(report_path_for(out).read_text())["epochs"]
    assert [e["val_miou"] for e in after] == [e["val_miou"] for e in before]
    assert geoseg.load_model(out).card.metadata["metrics"]["epoch"] in (0, 1)
    assert len(list(run_dir_for(out).glob("tile-index-*.json"))) == 1, "the tile index is cached and reused"
    # A finished run trains on to more epochs: the first two stay as they were.
    longer = runner.invoke(main, [*args, "--resume", "--set", "trainer.epochs=3"])
    assert longer.exit_code == 0, longer.output
    more = json.loads(report_path_for(out).read_text())["epochs"]
    assert len(more) == 3 and [e["val_miou"] for e in more[:2]] == [e["val_miou"] for e in before]
    assert geoseg.load_model(out).card.metadata["config"]["trainer"]["epochs"] == 3


@pytest.mark.slow
def test_same_seed_same_model(trained, shared_data, tmp_path):
    """A second run with the same config (through the Python API) gives bit-identical weights."""
    import torch
    from safetensors.torch import load_file

    out, _ = trained
    out = out.with_name("first-run.safetensors")
    again = geoseg.train(REPO / "configs/train/new_brunswick.yaml", tmp_path / "again.safetensors",
                         overrides=[f"data_root={shared_data}", *TINY])
    first, second = load_file(str(out)), load_file(str(again.model))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
