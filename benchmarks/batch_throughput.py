"""geoseg batch: throughput, overhead of the manifest and scheduling, and the cost of a rerun with nothing to do.

    python benchmarks/batch_throughput.py [--scenes 50] [--size 256] [--concurrency 1,2]

An archive of ``--scenes`` crops (``--size`` px) of ../shared/data is written to a temporary folder,
with a small U-Net (resnet18 encoder, 256 px tiles, random weights: speed does not depend on them).

1. A plain loop: ``geoseg.predict`` on every scene, one after the other, sharing one local Dask client.
2. ``run_batch`` on the same scenes and options, once per ``--concurrency`` value (a fresh output root
   and a fresh local cluster each time, its start included), then the overhead against the loop.
3. A rerun of the last batch with nothing to do (planning only: no cluster is started), in this process
   and as a new ``geoseg batch run`` process (Python start and imports included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _scenes import DATA

SOURCES = [
    ("kampala/kampala_oam_cluster1_image.tif", 3072, 2048),
    ("massachusetts/mass_22978945_15_image.tif", 1182, 901),
    ("sn4_atlanta/sn4_atlanta_image.tif", 508, 496),
]


def build_archive(folder: Path, count: int, size: int) -> list[Path]:
    import rasterio
    from rasterio.windows import Window

    windows = []
    for rel, width, height in SOURCES:
        for row in range(0, height - size + 1, size):
            for col in range(0, width - size + 1, size):
                windows.append((rel, row, col))
    if len(windows) < count:
        raise SystemExit(f"only {len(windows)} crops of {size} px fit in the sample data; ask for fewer scenes")
    step = len(windows) / count
    picked = [windows[int(i * step)] for i in range(count)]
    paths = []
    for i, (rel, row, col) in enumerate(picked):
        with rasterio.open(DATA / rel) as src:
            window = Window(col, row, size, size)
            profile = src.profile.copy()
            profile.update(width=size, height=size, transform=src.window_transform(window), tiled=False,
                           compress="deflate")
            for key in ("blockxsize", "blockysize"):
                profile.pop(key, None)
            out = folder / f"scene_{i:03d}_{Path(rel).parent.name}.tif"
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(src.read(window=window))
                dst.colorinterp = src.colorinterp
        paths.append(out)
    return paths


def build_model(path: Path) -> Path:
    import torch

    import geoseg
    from geoseg.model.network import create_network

    card = geoseg.ModelCard(
        classes=["background", "building"], bands=["red", "green", "blue"],
        normalization={"mean": [120.0] * 3, "std": [60.0] * 3}, architecture="unet", encoder="resnet18", tile_size=256,
    )
    torch.manual_seed(0)
    return geoseg.save_model(geoseg.Model(create_network(card).eval(), card), path, overwrite=True)


PREDICT = {"overlap": 32, "batch_size": 4, "device": "cpu"}


def plain_loop(scenes: list[Path], model: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, summed seconds inside predict)."""
    import geoseg
    from geoseg.cluster import ClusterSpec, dask_client

    out.mkdir()
    inside = 0.0
    started = time.perf_counter()
    with dask_client(ClusterSpec()) as client:
        for scene in scenes:
            folder = out / scene.stem
            folder.mkdir()
            result = geoseg.predict(scene, model, folder / "landcover.tif", confidence=folder / "confidence.tif",
                                    client=client, **PREDICT)
            inside += result.seconds
    return time.perf_counter() - started, inside


def per_scene_overhead(manifest: Path) -> tuple[float, float]:
    """Mean seconds per scene from submission to the manifest's ``done``, and the part spent outside predict."""
    import json
    import sqlite3

    with sqlite3.connect(manifest) as db:
        rows = list(db.execute("SELECT started_at, finished_at, timings FROM scenes WHERE status = 'done'"))
    spans = [f - s for s, f, _ in rows]
    outside = [f - s - json.loads(t)["predict"] for s, f, t in rows]
    return sum(spans) / len(spans), sum(outside) / len(outside)


def write_config(path: Path, archive: Path, model: Path, output: Path, concurrency: int) -> Path:
    import yaml

    data = {"input": {"folder": str(archive), "glob": "*.tif"}, "model": str(model),
            "steps": {"predict": {**PREDICT, "confidence": True}}, "output": str(output), "concurrency": concurrency}
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--concurrency", default="1,2")
    args = parser.parse_args()

    from geoseg.batch import run_batch

    with tempfile.TemporaryDirectory(prefix="geoseg-batch-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "archive").mkdir()
        scenes = build_archive(tmp / "archive", args.scenes, args.size)
        model = build_model(tmp / "model.safetensors")
        n = len(scenes)
        print(f"{n} scenes of {args.size}x{args.size} px; U-Net resnet18, 256 px tiles, "
              f"overlap {PREDICT['overlap']}, CPU")

        print(f"load average before: {os.getloadavg()[0]:.1f} (the CPU is shared with other jobs)")
        loop, inside = plain_loop(scenes, model, tmp / "loop")
        print(f"plain loop of geoseg.predict (one shared client): {loop:.1f} s, {60 * n / loop:.1f} scenes/min "
              f"({inside:.1f} s inside predict)")

        config = None
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            out = tmp / f"out{concurrency}"
            config = write_config(tmp / f"batch{concurrency}.yaml", tmp / "archive", model, out, concurrency)
            started = time.perf_counter()
            summary = run_batch(config)
            seconds = time.perf_counter() - started
            if summary.processed != n:
                raise SystemExit(f"batch processed {summary.processed} of {n} scenes: {summary.failed}")
            span, outside = per_scene_overhead(out / "manifest.sqlite")
            print(f"geoseg batch, concurrency {concurrency}: {seconds:.1f} s, {60 * n / seconds:.1f} scenes/min, "
                  f"{100 * (seconds - loop) / loop:+.1f} % against the plain loop; per scene {span:.2f} s from "
                  f"submission to done, of which {1000 * outside:.0f} ms outside predict "
                  "(checks, checksums, STAC, manifest)")

        started = time.perf_counter()
        again = run_batch(config)
        seconds = time.perf_counter() - started
        print(f"rerun with nothing to do, run_batch: {seconds:.2f} s "
              f"({len(again.planned)} planned, {again.up_to_date} up to date)")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "geoseg", "-q", "batch", "run", "--config", str(config)], check=True)
        print(f"rerun with nothing to do, `geoseg batch run` (a new process): {time.perf_counter() - started:.2f} s")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
