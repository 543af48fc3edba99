"""Bad input to predict: a one-line error naming the file and the fix, exit 1, no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner
from support.nets import make_model, tiny_unet

from geoseg.cli import main


@pytest.fixture
def model_file(tmp_path) -> Path:
    return tiny_unet(tile_size=32).save(tmp_path / "m.safetensors")


def run_cli(*args: str):
    return CliRunner().invoke(main, ["-q", "predict", *args])


def no_outputs(folder: Path) -> bool:
    return not any(p.name.startswith("out") for p in folder.iterdir())


def make_bad_inputs(tmp_path: Path, make_raster) -> dict[str, tuple[Path, str]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (3, 20, 20), dtype=np.uint8)
    random_bytes = tmp_path / "random.tif"
    random_bytes.write_bytes(rng.bytes(5000))
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    good = make_raster("good.tif", rgb)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[:200])
    vrt = tmp_path / "sneaky.tif"
    vrt.write_text('<VRTDataset rasterXSize="20" rasterYSize="20"></VRTDataset>')
    return {
        "random bytes": (random_bytes, "not a readable GeoTIFF"),
        "empty file": (empty, "not a readable GeoTIFF"),
        "truncated": (truncated, "not a readable GeoTIFF"),
        "VRT named .tif": (vrt, "not a readable GeoTIFF"),
        "missing": (tmp_path / "nope.tif", "does not exist"),
        "no CRS": (make_raster("nocrs.tif", rgb, crs=None), "has no CRS"),
        "no geotransform": (make_raster("nogt.tif", rgb, transform=Affine.identity()), "no geotransform"),
        "rotated": (
            make_raster("rot.tif", rgb, transform=Affine(0.5, 0.1, 500000, 0.1, -0.5, 4e6)), "rotated or sheared"
        ),
        "two bands": (make_raster("two.tif", rgb[:2]), "expects 3"),
        "uint16": (make_raster("u16.tif", rgb.astype(np.uint16)), "expects uint8"),
    }


def test_bad_scenes_give_one_line_errors_and_no_output(tmp_path, make_raster, model_file):
    for label, (scene, message) in make_bad_inputs(tmp_path, make_raster).items():
        result = run_cli(str(scene), "--model", str(model_file), "--out", str(tmp_path / "out.tif"))
        assert result.exit_code == 1, (label, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), (label, result.output)
        assert message in lines[0], (label, lines[0])
        assert scene.name in lines[0], (label, lines[0])
        assert no_outputs(tmp_path), label


def test_bad_model_files(tmp_path, make_raster):
    scene = make_raster("s.tif", np.zeros((3, 20, 20), np.uint8))
    pickle = tmp_path / "pickle.safetensors"
    torch.save({"w": torch.zeros(2)}, pickle)
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(plain))
    cases = {
        "missing": (tmp_path / "missing.safetensors", "does not exist"),
        "pickle": (pickle, "not a safetensors model file"),
        "no card": (plain, "no geoseg model card"),
    }
    for label, (model, message) in cases.items():
        result = run_cli(str(scene), "--model", str(model), "--out", str(tmp_path / "out.tif"))
        assert result.exit_code == 1, (label, result.output)
        assert message in result.output and result.output.count("\n") == 1, (label, result.output)
        assert no_outputs(tmp_path), label


def test_usage_errors_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["predict", "x.tif", "--out", str(tmp_path / "o.tif"), "--blend", "max"])
    assert result.exit_code == 2


def test_cli_end_to_end_with_progress(tmp_path, make_raster, model_file):
    scene = make_raster("s.tif", np.random.default_rng(0).integers(0, 255, (3, 70, 50), dtype=np.uint8))
    out = tmp_path / "cli.tif"
    proc = subprocess.run(
        [sys.executable, "-m", "geoseg", "predict", str(scene), "--model", str(model_file), "--out", str(out),
         "--overlap", "8", "--confidence", str(tmp_path / "cliconf.tif"), "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tile" in proc.stderr and "MPix/s" in proc.stderr  # progress and summary on stderr
    with rasterio.open(out) as ds:
        assert ds.shape == (70, 50)
    again = subprocess.run(
        [sys.executable, "-m", "geoseg", "-q", "predict", str(scene), "--model", str(model_file), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 1 and "--overwrite" in again.stderr and again.stdout == ""


def test_help_is_fast_and_imports_no_heavy_library():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom geoseg.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'dask', 'distributed', 'rasterio', 'geopandas') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_custom_network_file_is_refused_with_a_fix(tmp_path, make_raster):
    scene = make_raster("s.tif", np.zeros((3, 20, 20), np.uint8))
    custom = make_model(tile_size=16).save(tmp_path / "custom.safetensors")
    result = run_cli(str(scene), "--model", str(custom), "--out", str(tmp_path / "out.tif"))
    assert result.exit_code == 1 and "network=" in result.output
    assert no_outputs(tmp_path)
