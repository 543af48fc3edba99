"""The pipeline's ceiling: geoseg.predict with a network that costs nothing, against reading the same windows.

    python benchmarks/predict_ceiling.py [--size 8192] [--repeat 3] [--threads N] [--device cpu] [--profile]

The network is a 1x1 convolution (:class:`_predict_bench.NullNet`), so what
is timed is the pipeline: decoding, normalising, blending, stitching, writing
the COG.  The reference reads every 512 px tile window of the same scene with
rasterio on the same number of threads (each with its own dataset).  Both run
in fresh processes, alternately, ``--repeat`` times; each pair prints MPix/s,
the ratio predict / read, CPU seconds and the load average (the machine may be
shared).  Both children import their libraries (rasterio; geoseg's prediction modules) before the clock
starts.  ``--profile`` runs one more predict under py-spy (if installed) and
prints where each thread spent its time.  The scene is mirrored from
../shared/data/kampala into a temporary folder.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _predict_bench import child, emit, load, null_model, timed  # noqa: E402
from _scenes import KAMPALA, mirrored  # noqa: E402

TILE, OVERLAP = 512, 64


def read_windows(scene: Path, threads: int) -> dict[str, float]:
    import rasterio
    from rasterio.windows import Window

    from geoseg.tiling import tile_grid

    with rasterio.open(scene) as ds:
        height, width = ds.height, ds.width
    tiles = iter(tile_grid(height, width, TILE, OVERLAP))
    lock = threading.Lock()

    def work() -> None:
        with rasterio.open(scene) as ds:
            while True:
                with lock:
                    tile = next(tiles, None)
                if tile is None:
                    return
                ds.read(window=Window(tile.read.col_off, tile.read.row_off, TILE, TILE))

    def run() -> None:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    return timed(run)


def predict(scene: Path, out: Path, device: str, batch_size: int) -> dict[str, float]:
    import geoseg
    import geoseg.prediction.api
    import geoseg.prediction.local  # noqa: F401  (libraries imported before the clock starts, as for reading)

    model = null_model()
    return timed(lambda: geoseg.predict(scene, model, out, overlap=OVERLAP, batch_size=batch_size, device=device,
                                        overwrite=True))


def run_child(args: argparse.Namespace) -> None:
    if args.what == "read":
        emit(read_windows(args.scene, args.threads))
    else:
        emit(predict(args.scene, args.out, args.device, args.batch_size))


def profile(script: Path, scene: Path, out: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed (pip install py-spy); no profile", flush=True)
        return
    raw = out.with_suffix(".spy")
    cmd = [spy, "record", "-o", str(raw), "-f", "raw", "-r", "100", "--threads", "--nonblocking", "--",
           sys.executable, str(script), "--child", "predict", "--scene", str(scene), "--out", str(out),
           "--device", args.device, "--batch-size", str(args.batch_size)]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env})
    by_thread: collections.Counter[str] = collections.Counter()
    by_line: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        thread = frames[0].split(":")[-1].strip()
        if not any("geoseg" in f for f in frames):
            continue  # imports before predict starts, idle threads
        by_thread[thread] += int(count)
        inner = next(f for f in reversed(frames) if "geoseg" in f)
        by_line[(thread, inner)] += int(count)
    print("profile of one predict (samples at 100 Hz, waiting included):", flush=True)
    for thread, n in by_thread.most_common():
        print(f"  {n:6d}  {thread}")
    for (thread, where), n in by_line.most_common(25):
        print(f"  {n:6d}  {thread:16s} {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="Threads of the read reference.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", dest="what", choices=["read", "predict"], help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what:
        return run_child(args)

    script = Path(__file__).resolve()
    env = {"PYTHONPATH": os.pathsep.join([str(script.parent), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        scene = mirrored(KAMPALA, Path(tmp) / "scene.tif", args.size)
        out = Path(tmp) / "out.tif"
        mpix = args.size * args.size / 1e6
        ratios = []
        for i in range(args.repeat):
            before = load()
            read = child(script, "read", "--scene", str(scene), "--threads", str(args.threads), env=env)
            pred = child(script, "predict", "--scene", str(scene), "--out", str(out), "--device", args.device,
                         "--batch-size", str(args.batch_size), env=env)
            ratio = read["seconds"] / pred["seconds"]
            ratios.append(ratio)
            emit({"run": i, "scene": f"{args.size}x{args.size}", "read_threads": args.threads,
                  "read_mpix_s": round(mpix / read["seconds"], 2), "predict_mpix_s": round(mpix / pred["seconds"], 2),
                  "ratio_predict_over_read": round(ratio, 3), "read_cpu_s": round(read["cpu_seconds"], 1),
                  "predict_cpu_s": round(pred["cpu_seconds"], 1), "load_before": before, "load_after": load()})
        emit({"median_ratio": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
              "max": round(max(ratios), 3), "bar": 0.4})
        if args.profile:
            profile(script, scene, out, args, env)


if __name__ == "__main__":
    main()
