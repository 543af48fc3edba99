"""geoseg evaluate: time and peak memory on a large scene, for each kind of truth.

    python benchmarks/evaluate_performance.py [--size 8192]

The prediction is the Kampala building mask mirrored to size x size pixels
(tiled 512 px blocks, class table tag).  Truths:
  1. the mask moved by 2 pixels, on the same grid (raster, read directly);
  2. the mask on a grid shifted by 1.5 pixels (raster, warped per window with nearest neighbour);
  3. truth 1 traced to polygons in a GeoPackage (vector, rasterised per window);
and run 4 adds predicted polygons (polygon F1, truth traced from the raster across window seams).
Each run is the ``geoseg evaluate`` CLI in a subprocess; prints seconds, MPix/s and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import shapes
from shapely.geometry import shape

sys.path.insert(0, str(Path(__file__).parent))
from _scenes import DATA, PeakRSS, mirrored

from geoseg.classes import ClassInfo, classes_to_json

MASK = DATA / "kampala" / "kampala_oam_cluster1_mask.tif"
CLASSES = [ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "building", (230, 25, 75))]


def polygons_of(path: Path, out: Path, layer: str) -> int:
    with rasterio.open(path) as ds:
        data, transform, crs = ds.read(1), ds.transform, ds.crs
    geoms = [shape(g) for g, _ in shapes(data, mask=data == 1, connectivity=4, transform=transform)]
    gpd.GeoDataFrame({"class_id": [1] * len(geoms)}, geometry=geoms, crs=crs).to_file(out, layer=layer)
    return len(geoms)


def run(args: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "geoseg", "-q", "evaluate", *args], stdout=subprocess.PIPE, text=True
    )
    with PeakRSS(proc.pid) as rss:
        out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"geoseg evaluate failed: {args}")
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": rss.peak / 2**20, "stdout": out.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    size = parser.parse_args().size
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pred = mirrored(MASK, tmp / "pred.tif", size)
        with rasterio.open(pred, "r+") as ds:
            ds.update_tags(GEOSEG_CLASSES=classes_to_json(CLASSES))
            transform, profile, data = ds.transform, ds.profile, ds.read(1)
        # Truth on the same grid: the mask moved by 2 pixels, so the figures are not perfect.
        with rasterio.open(tmp / "truth.tif", "w", **profile) as ds:
            ds.write(np.roll(data, (2, 2), axis=(0, 1)), 1)
        # Truth on another grid: the same content with its origin moved by 1.5 pixels.
        shifted = mirrored(MASK, tmp / "shifted.tif", size)
        with rasterio.open(shifted, "r+") as ds:
            ds.transform = transform * transform.translation(1.5, 1.5)
        del data
        n_truth = polygons_of(tmp / "truth.tif", tmp / "truth.gpkg", "truth")
        n_pred = polygons_of(pred, tmp / "pv.gpkg", "building")
        mpix = size * size / 1e6
        cases = {
            "raster truth, same grid": ["--truth", str(tmp / "truth.tif")],
            "raster truth, other grid (warped)": ["--truth", str(shifted)],
            f"vector truth ({n_truth} polygons)": ["--truth", str(tmp / "truth.gpkg")],
            f"raster truth + {n_pred} predicted polygons": [
                "--truth",
                str(tmp / "truth.tif"),
                "--pred-vectors",
                str(tmp / "pv.gpkg"),
            ],
        }
        results = {}
        for k, (label, extra) in enumerate(cases.items()):
            r = run([str(pred), *extra, "--out", str(tmp / f"report{k}")])
            metrics = json.loads((tmp / f"report{k}" / "metrics.json").read_text())
            r.update(mpix_per_s=mpix / r["seconds"], mean_iou=metrics["mean_iou"])
            results[label] = r
            print(
                f"{label}: {r['seconds']:.1f} s, {r['mpix_per_s']:.1f} MPix/s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"mean IoU {r['mean_iou']:.4f}",
                flush=True,
            )
        print(json.dumps({"size": size, "results": results}, indent=1))


if __name__ == "__main__":
    main()
