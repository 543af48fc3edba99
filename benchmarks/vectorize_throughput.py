"""Vectorising throughput and memory: buildings from a large class raster, block by block on Dask.

    python benchmarks/vectorize_throughput.py [--sizes 16384 8192] [--block-size 4096] [--workers N] [--tmp DIR]

Builds square class rasters (uint8, nodata 255, DEFLATE, 512-px tiles, the
class table background/building in the GEOSEG_CLASSES tag) by mirroring the
Kampala building mask (3072 x 2048, 7.5 cm) in both directions, in a temporary
folder that is removed afterwards.  For each size, starts a fresh local Dask
cluster (one single-threaded worker process per core, as ``geoseg vectorize``
does) and vectorises buildings only (``classes=["building"]``) into a GeoPackage for each size with the default
options, and prints: wall time, throughput in MPix/s (with and without the
cluster's start-up), features written, and the peak RSS summed over this
process and its Dask worker processes (sampled every 0.2 s), next to the RSS
before the run.  The same peak for two scene sizes shows that memory does not
grow with the scene.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scenes import DATA, PeakRSS, mirrored, tree_rss  # noqa: E402

from geoseg.classes import CLASSES_TAG, ClassInfo, classes_to_json  # noqa: E402
from geoseg.cluster import ClusterSpec, dask_client  # noqa: E402
from geoseg.vectorization.api import vectorize  # noqa: E402

MASK = DATA / "kampala" / "kampala_oam_cluster1_mask.tif"
SCHEME = [ClassInfo(0, "background"), ClassInfo(1, "building", (230, 25, 75))]


def class_raster(folder: Path, size: int) -> Path:
    path = mirrored(MASK, folder / f"kampala_classes_{size}.tif", size)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(SCHEME)})
    return path


def warm_up() -> None:
    """Import what the block tasks use (part of the cluster's start-up, not of vectorising)."""
    import pyproj  # noqa: F401
    import rasterio.features  # noqa: F401
    import shapely  # noqa: F401

    import geoseg.vectorization.tasks  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16384, 8192])
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tmp", type=Path, default=None, help="Folder for the temporary rasters and outputs.")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="geoseg-vectorize-bench-", dir=args.tmp) as tmp:
        folder = Path(tmp)
        rasters = {}
        for size in args.sizes:
            started = time.perf_counter()
            rasters[size] = class_raster(folder, size)
            print(f"built {size}x{size} class raster in {time.perf_counter() - started:.1f} s "
                  f"({rasters[size].stat().st_size / 1e6:.0f} MB)", flush=True)
        for size in args.sizes:
            # A fresh cluster per size, so that one run's leftovers do not count in the next one's memory.
            started = time.perf_counter()
            with dask_client(ClusterSpec(workers=args.workers, threads_per_worker=1)) as client:
                client.run(warm_up)
                startup = time.perf_counter() - started
                pid = os.getpid()
                before = tree_rss(pid)
                out = folder / f"buildings_{size}.gpkg"
                with PeakRSS(pid, interval=0.05) as peak:
                    result = vectorize(
                        rasters[size], out, classes=["building"], block_size=args.block_size, client=client
                    )
            mpix = size * size / 1e6
            row = {
                "size": size,
                "block_size": args.block_size,
                "workers": args.workers,
                "megapixels": round(mpix, 1),
                "cluster_start_s": round(startup, 2),
                "seconds": round(result.seconds, 2),
                "mpix_per_s": round(mpix / result.seconds, 1),
                "mpix_per_s_with_cluster_start": round(mpix / (result.seconds + startup), 1),
                "features": result.features,
                "rss_before_mb": round(before / 2**20),
                "peak_rss_mb": round(peak.peak / 2**20),
                "output_mb": round(out.stat().st_size / 1e6, 1),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
            out.unlink()
    print()
    print(f"{'size':>7} {'s':>7} {'MPix/s':>7} {'+start':>7} {'features':>9} {'RSS before':>11} {'peak RSS':>9}")
    for r in results:
        print(f"{r['size']:>7} {r['seconds']:>7.1f} {r['mpix_per_s']:>7.1f} {r['mpix_per_s_with_cluster_start']:>7.1f} "
              f"{sum(r['features'].values()):>9} {r['rss_before_mb']:>8} MB {r['peak_rss_mb']:>6} MB")


if __name__ == "__main__":
    main()
