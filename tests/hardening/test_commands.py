"""The promise, command by command: one line, exit 1 (2 for usage), nothing half-written, inputs untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from support import hostile as h
from support.nets import tiny_unet

from geoseg.atomic import TMP_MARKER
from geoseg.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_unet(tile_size=128).save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-q", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in stderr, stderr
    return lines[0]


def test_predict_refuses_to_overwrite_its_input_through_a_link(tmp_path, model):
    scene = h.write_scene(tmp_path / "scene.tif")
    before = h.snapshot(tmp_path)
    (tmp_path / "out.tif").symlink_to("scene.tif")
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(tmp_path / "out.tif"), "--overwrite")
    assert code == 2 and "is the input" in one_line(err)
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(tmp_path / "o.tif"),
                    "--confidence", str(scene), "--overwrite")
    assert code == 2 and "is the input" in one_line(err)
    (tmp_path / "out.tif").unlink()
    assert h.snapshot(tmp_path) == before


@pytest.mark.parametrize("make", [h.write_corrupt_blocks, h.write_truncated, h.write_header_only])
def test_predict_on_broken_tiles_is_one_line_naming_the_file(tmp_path, model, make):
    scene = make(tmp_path / "broken.tif")
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(tmp_path / "out.tif"))
    assert code == 1 and "broken.tif" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tif"]


def test_predict_on_a_full_disk_leaves_nothing(tmp_path, full_disk, model):
    scene = h.write_scene(tmp_path / "scene.tif", size=300)
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(full_disk / "out.tif"),
                    "--confidence", str(full_disk / "conf.tif"))
    assert code == 1 and "disk is full" in one_line(err) and "out.tif" in err
    assert list(full_disk.iterdir()) == []


@pytest.mark.parametrize("size", ["256k", "528k"])
def test_predict_meeting_a_full_disk_mid_write_is_one_line_and_leaves_nothing(tmp_path, model, small_disk, size):
    """The free-space check passes (a 300 x 300 scene stages 90 KB an output) but the disk fills while GDAL writes:
    the staging rasters (whole 512 px tiles) at 256 KiB, the COGs at 528 KiB."""
    import subprocess
    import sys

    scene = h.write_scene(tmp_path / "scene.tif", size=300)
    disk = small_disk(size)
    # A process of its own: libtiff would print to file descriptor 2 itself, which CliRunner does not capture.
    proc = subprocess.run([sys.executable, "-m", "geoseg", "-q", "predict", str(scene), "--model", str(model),
                           "--out", str(disk / "out.tif"), "--confidence", str(disk / "conf.tif")],
                          capture_output=True, text=True, timeout=300)
    code, err = proc.returncode, proc.stderr
    if code == 0:  # the COGs fitted after all: then both are whole
        assert sorted(p.name for p in disk.iterdir()) == ["conf.tif", "out.qml", "out.tif"]
    else:
        assert code == 1 and "disk is full" in one_line(err)
        assert list(disk.iterdir()) == []


def test_predict_into_a_read_only_folder(tmp_path, read_only, model):
    scene = h.write_scene(tmp_path / "scene.tif")
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(read_only / "out.tif"))
    assert code == 1 and "read-only" in one_line(err)


def test_predict_usage_errors_exit_2(tmp_path, model):
    scene = h.write_scene(tmp_path / "scene.tif")
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(tmp_path / "o.tif"), "--overlap", "128")
    assert code == 2 and "overlap" in one_line(err)
    coarse = h.write_scene(tmp_path / "coarse.tif", size=64, res=300.0)
    code, err = run("predict", str(coarse), "--out", str(tmp_path / "o.tif"), "--resample")
    assert code == 2 and "coarse.tif" in one_line(err) and "upsample" in err
    assert not (tmp_path / "o.tif").exists()


def test_predict_ignores_a_msk_sidecar_reading_a_url(tmp_path, model, canary):
    url, hits = canary
    scene = h.write_scene(tmp_path / "scene.tif")
    h.write_msk_sidecar(scene, f"/vsicurl/{url}/mask.tif")
    code, err = run("predict", str(scene), "--model", str(model), "--out", str(tmp_path / "out.tif"), "--overlap", "16")
    assert code == 0, err
    assert hits == []


def test_vectorize_full_disk_and_unknown_class(tmp_path, full_disk):
    raster = h.write_class_raster(tmp_path / "lc.tif")
    code, err = run("vectorize", str(raster), "--out", str(full_disk / "b.gpkg"))
    assert code == 1 and "disk is full" in one_line(err)
    assert list(full_disk.iterdir()) == []
    code, err = run("vectorize", str(raster), "--out", str(tmp_path / "b.gpkg"), "--classes", "roof")
    assert code == 2 and "unknown class 'roof'" in one_line(err)
    assert not (tmp_path / "b.gpkg").exists()


def test_evaluate_report_on_a_full_disk_leaves_no_folder(tmp_path, full_disk):
    raster = h.write_class_raster(tmp_path / "lc.tif", size=256)
    truth = h.write_polygons(tmp_path / "truth.gpkg")
    code, err = run("evaluate", str(raster), "--truth", str(truth), "--out", str(full_disk / "report"))
    assert code == 1 and "disk is full" in one_line(err)
    assert list(full_disk.iterdir()) == []


def test_evaluate_with_a_vrt_truth_is_refused(tmp_path, canary):
    url, hits = canary
    raster = h.write_class_raster(tmp_path / "lc.tif")
    truth = h.write_ogr_vrt(tmp_path / "truth.geojson", f"/vsicurl/{url}/labels.gpkg")
    code, err = run("evaluate", str(raster), "--truth", str(truth), "--out", str(tmp_path / "report"))
    assert code == 1 and "truth.geojson" in one_line(err) and "OGR VRT" in err
    assert hits == [] and not (tmp_path / "report").exists()


def _train_config(folder: Path, **changes) -> Path:
    image = h.write_scene(folder / "img.tif", size=128)
    labels = h.write_polygons(folder / "labels.gpkg")
    data = {"scenes": [{"image": image.name, "labels": labels.name, "fill": 0}],
            "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "building"}],
            "model": {"architecture": "unet", "encoder": "resnet18"}, "tile_size": 64,
            "trainer": {"epochs": 1, "batch_size": 2, "device": "cpu"}, "sampler": {"samples_per_epoch": 4}}
    data.update(changes)
    (folder / "train.yaml").write_text(yaml.safe_dump(data))
    return folder / "train.yaml"


def test_train_with_vrt_labels_leaves_no_run_folder(tmp_path):
    config = _train_config(tmp_path)
    h.write_ogr_vrt(tmp_path / "labels.gpkg", tmp_path / "img.tif")
    before = h.snapshot(tmp_path)
    code, err = run("train", "--config", str(config), "--out", str(tmp_path / "m.safetensors"))
    assert code == 1 and "labels.gpkg" in one_line(err)
    assert h.snapshot(tmp_path) == before  # no model, no report, no m.run/


def test_train_yaml_bomb_exits_2_naming_the_file(tmp_path):
    (tmp_path / "bomb.yaml").write_text(h.billion_laughs())
    code, err = run("train", "--config", str(tmp_path / "bomb.yaml"), "--out", str(tmp_path / "m.safetensors"))
    assert code == 2 and "bomb.yaml" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]


@pytest.mark.slow
def test_train_failing_to_write_its_report_leaves_neither_model_nor_report(tmp_path, monkeypatch):
    """The model and the report are staged and renamed together: a full disk at the report keeps neither."""
    import errno

    config = _train_config(tmp_path)
    real = Path.write_text

    from geoseg.training.api import report_path_for

    out = tmp_path / "m.safetensors"
    report = report_path_for(out)

    def write_text(self: Path, *args, **kwargs):
        if TMP_MARKER in self.name and self.name.startswith(report.stem):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    code, err = run("train", "--config", str(config), "--out", str(out))
    assert code == 1 and "disk is full" in one_line(err) and report.name in err
    assert not out.exists() and not report.exists()
    assert not list(tmp_path.glob(f"*{TMP_MARKER}*"))


def test_batch_failed_scenes_leave_nothing_under_the_output_root(tmp_path, model):
    archive = tmp_path / "archive"
    archive.mkdir()
    h.write_corrupt_blocks(archive / "corrupt.tif")
    (archive / "passwd.tif").symlink_to("/etc/passwd")
    config = tmp_path / "batch.yaml"
    config.write_text(yaml.safe_dump({"input": {"folder": "archive"}, "model": str(model), "output": "out",
                                      "steps": {"predict": {"device": "cpu", "overlap": 16}}, "retries": 0}))
    result = CliRunner().invoke(main, ["-q", "batch", "run", "--config", str(config)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.startswith("failed: ") for line in lines), result.stderr
    assert "outside the archive" in result.stderr and "corrupt.tif" in result.stderr
    left = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")}
    assert all(p.startswith(("manifest.sqlite", "logs", "collection.json")) for p in left), left


def test_batch_manifest_naming_an_input_exits_2_and_touches_nothing(tmp_path, model):
    archive = tmp_path / "archive"
    archive.mkdir()
    scene = h.write_scene(archive / "a.tif", size=32)
    config = tmp_path / "batch.yaml"
    config.write_text(yaml.safe_dump({"input": {"folder": "archive"}, "model": str(model), "output": "out",
                                      "manifest": "archive/a.tif"}))
    before = h.snapshot(tmp_path)
    code, err = run("batch", "run", "--config", str(config))
    assert code == 2 and "not a geoseg manifest" in one_line(err)
    assert h.snapshot(tmp_path) == before and json.dumps(str(scene))
