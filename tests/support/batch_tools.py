"""Tools for the ``geoseg batch`` tests: a tiny real network, an archive of real crops, configs, CLI runs."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from geoseg.atomic import TMP_MARKER

#: Real scenes cropped to 256 x 256 (the Atlanta crop keeps its alpha band, which is a mask, not data).
CROPS = {
    "kampala": ("kampala/kampala_oam_cluster1_image.tif", 512, 768),
    "massachusetts": ("massachusetts/mass_22978945_15_image.tif", 300, 400),
    "new_brunswick": ("new_brunswick/nb_1of2_image.tif", 40, 20),
    "atlanta": ("sn4_atlanta/sn4_atlanta_image.tif", 100, 120),
}


def build_tiny_model(path: Path) -> Path:
    """A small U-Net (resnet18 encoder, shallow decoder), random but fixed weights, 128 px tiles."""
    import torch

    import geoseg
    from geoseg.model.network import create_network

    card = geoseg.ModelCard(
        classes=["background", "building"], bands=["red", "green", "blue"],
        normalization={"mean": [120.0] * 3, "std": [60.0] * 3}, architecture="unet", encoder="resnet18",
        arch_params={"encoder_depth": 3, "decoder_channels": [32, 16, 8]}, dtype="uint8", tile_size=128,
    )
    torch.manual_seed(0)
    return geoseg.save_model(geoseg.Model(create_network(card).eval(), card), path, overwrite=True)


def write_crop(shared_data: Path, name: str, out: Path, size: int = 256) -> Path:
    import rasterio
    from rasterio.windows import Window

    rel, row, col = CROPS[name]
    with rasterio.open(shared_data / rel) as src:
        window = Window(col, row, size, size)
        profile = src.profile.copy()
        profile.update(width=size, height=size, transform=src.window_transform(window), tiled=False, compress="deflate")
        for key in ("blockxsize", "blockysize"):
            profile.pop(key, None)
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.colorinterp = src.colorinterp
    return out


def write_corrupt(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def write_no_crs(path: Path) -> Path:
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as ds:
            ds.write(np.full((3, 64, 64), 100, np.uint8))
    return path


def make_archive(shared_data: Path, folder: Path, names=tuple(CROPS), *, bad: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_crop(shared_data, name, folder / f"{name}.tif")
    if bad:
        write_corrupt(folder / "corrupt.tif")
        write_no_crs(folder / "no_crs.tif")
    return folder


def write_config(path: Path, *, archive: Path, model: Path, output: str = "out", predict: dict | None = None,
                 **extra) -> Path:
    data = {
        "input": {"folder": os.path.relpath(archive, path.parent), "glob": "*.tif"},
        "model": os.path.relpath(model, path.parent),
        "steps": {"predict": {"overlap": 16, "batch_size": 4, "device": "cpu", **(predict or {})}},
        "output": output,
        "concurrency": 2,
        "retries": 1,
        "retry_backoff": 0.2,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def output_hashes(root: Path) -> dict[str, str]:
    """sha256 of every output under ``root`` (not the manifest, its lock or the logs).

    The collection's ``self`` link is the absolute URI of where it lies: it is hashed as ``self`` so that
    archives written to different folders compare equal.
    """
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(("logs/", "manifest.sqlite")):
            data = path.read_bytes()
            if rel == "collection.json":
                data = data.replace(root.resolve().as_uri().encode(), b"self")
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{TMP_MARKER}*")]


def manifest_rows(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5) as db:
        db.row_factory = sqlite3.Row
        try:
            return {r["scene_id"]: dict(r) for r in db.execute("SELECT * FROM scenes")}
        except sqlite3.OperationalError:  # schema not created yet
            return {}


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoseg", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def run_until_then_kill(config: Path, when: Callable[[], bool], *, timeout: float = 120) -> str:
    """Start ``geoseg batch run`` in its own process group; SIGKILL the whole group once ``when()`` holds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "geoseg", "-q", "batch", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not when():
            if proc.poll() is not None:
                raise AssertionError(
                    f"the run ended (rc {proc.returncode}) before the kill point: {proc.stderr.read()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError("the kill point was never reached")
            time.sleep(0.02)
    finally:
        with_group = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            with_group = False
        proc.wait(timeout=30)
    return "killed" if with_group else "ended"
