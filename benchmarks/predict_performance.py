"""geoseg predict with a real network: efficiency against a bare forward loop, and peak memory.

    python benchmarks/predict_performance.py [--efficiency-size 4096] [--memory-sizes 4096,16384] [--repeat 2]

1. Efficiency: DeepLabV3+ (ResNet-34 encoder) on the tiles of a scene,
   (a) as a bare loop of batched forward passes and softmax over the same tiles, read and normalised into
       memory beforehand (once with torch's threads in one loop, once as two Python threads sharing them;
       the faster counts),
   (b) as ``geoseg predict`` end to end (a CLI process: start-up, reading, blending, writing the COG),
   on the same threads (torch's default number) and batch size.  Prints (a)/(b), and (a) over the time
   ``geoseg predict`` reports for its own work (without interpreter start-up and imports).
2. Memory: peak RSS of the whole process tree of ``geoseg predict`` with a small network on two scene
   sizes, and their ratio.
Each run prints the load average (the machine may be shared).  Scenes are mirrored from
../shared/data/kampala into a temporary folder.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _predict_bench import child, emit, load, smp_model_file  # noqa: E402
from _scenes import KAMPALA, PeakRSS, mirrored  # noqa: E402

TILE, OVERLAP = 512, 64


def bare_loop(model_path: Path, scene: Path, batch: int, device: str, lanes: int) -> dict[str, float]:
    """Batched forward passes and softmax over the scene's tiles, read and normalised into memory beforehand:
    one loop with torch's threads, or ``lanes`` Python threads sharing them (each its own share of the
    batches), as geoseg's local engine runs the CPU."""
    import threading

    import numpy as np
    import torch

    import geoseg
    from geoseg.io.rasters import read_window
    from geoseg.model.preprocess import normalise
    from geoseg.prediction.device import select_device
    from geoseg.tiling import tile_grid

    dev = select_device(device)
    model = geoseg.load_model(model_path)
    network = model.network.to(dev).eval()
    import rasterio

    with rasterio.open(scene) as ds:
        tiles = tile_grid(ds.height, ds.width, TILE, OVERLAP)
        inputs = [normalise(*read_window(str(scene), t.read, (1, 2, 3), dataset=ds), model.card.normalization)
                  for t in tiles]
    batches = [torch.from_numpy(np.stack(inputs[i : i + batch])).to(dev) for i in range(0, len(inputs), batch)]
    if lanes > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // lanes))

    def loop(share: list[torch.Tensor]) -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda"):
            for x in share:
                torch.softmax(network(x).float(), dim=1)

    loop(batches[:1])  # warm-up
    threads = [threading.Thread(target=loop, args=(batches[i::lanes],)) for i in range(lanes)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return {"seconds": time.perf_counter() - start}


def run_predict(scene: Path, model: Path, out: Path, extra: list[str]) -> dict[str, float]:
    """``geoseg predict`` as a CLI process: wall time, its own reported time, peak RSS of the process tree."""
    cmd = [sys.executable, "-m", "geoseg", "predict", str(scene), "--model", str(model), "--out", str(out),
           "--overwrite", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as rss:
        _, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"geoseg predict failed ({proc.returncode}):\n{stderr[-3000:]}")
    own = re.search(r"px, \d+ tiles, ([\d.]+) s", stderr)
    return {"seconds": seconds, "predict_s": float(own.group(1)) if own else float("nan"), "peak_rss": rss.peak}


def efficiency(tmp: Path, args: argparse.Namespace, script: Path) -> None:
    from geoseg.tiling import tile_grid

    size = args.efficiency_size
    scene = mirrored(KAMPALA, tmp / f"scene_{size}.tif", size)
    model = smp_model_file(tmp / "deeplab.safetensors", "deeplabv3plus", args.encoder)
    n_tiles = len(tile_grid(size, size, TILE, OVERLAP))
    for i in range(args.repeat):
        before = load()

        def bare_loops() -> dict[int, float]:
            return {lanes: child(script, "bare", "--model", str(model), "--scene", str(scene), "--batch-size",
                                 str(args.batch_size), "--device", args.device, "--lanes", str(lanes))["seconds"]
                    for lanes in (1, 2)}

        def end_to_end() -> dict[str, float]:
            return run_predict(scene, model, tmp / "out.tif", ["--batch-size", str(args.batch_size), "--device",
                                                                args.device])

        if i % 2 == 0:  # alternate the order: the load of a shared machine drifts
            bare, run = bare_loops(), end_to_end()
        else:
            run, bare = end_to_end(), bare_loops()
        best = min(bare.values())
        emit({"efficiency_run": i, "scene": f"{size}x{size}", "tiles": n_tiles,
              "network": f"DeepLabV3+ {args.encoder}", "batch_size": args.batch_size, "device": args.device,
              "bare_loop_s": round(bare[1], 1), "bare_loop_2_lanes_s": round(bare[2], 1),
              "geoseg_predict_process_s": round(run["seconds"], 1), "geoseg_predict_own_s": round(run["predict_s"], 1),
              "ratio_best_bare_over_process": round(best / run["seconds"], 3),
              "ratio_best_bare_over_own": round(best / run["predict_s"], 3),
              "end_to_end_mpix_s": round(size * size / 1e6 / run["seconds"], 3),
              "load_before": before, "load_after": load()})
    scene.unlink()


def memory(tmp: Path, args: argparse.Namespace) -> None:
    small = smp_model_file(tmp / "small.safetensors", "unet", "resnet18",
                           {"encoder_depth": 3, "decoder_channels": [16, 8, 4]})
    sizes = [int(s) for s in args.memory_sizes.split(",")]
    for i in range(args.repeat):
        peaks = {}
        for size in sizes:
            scene = mirrored(KAMPALA, tmp / f"scene_{size}.tif", size)
            before = load()
            run = run_predict(scene, small, tmp / "mem.tif", ["--batch-size", str(args.batch_size), "--device",
                                                               args.device])
            peaks[size] = run["peak_rss"]
            emit({"memory_run": i, "scene": f"{size}x{size}", "peak_rss_gb": round(run["peak_rss"] / 2**30, 3),
                  "seconds": round(run["seconds"], 1), "mpix_s": round(size * size / 1e6 / run["seconds"], 2),
                  "load_before": before, "load_after": load()})
            scene.unlink()
        if len(sizes) >= 2:
            emit({"memory_run": i, "pixel_ratio": (sizes[-1] / sizes[0]) ** 2,
                  "memory_ratio": round(peaks[sizes[-1]] / peaks[sizes[0]], 3), "bar": 1.1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--efficiency-size", type=int, default=4096)
    parser.add_argument("--memory-sizes", default="4096,16384")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-efficiency", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", dest="what", choices=["bare"], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lanes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what == "bare":
        return emit(bare_loop(args.model, args.scene, args.batch_size, args.device, args.lanes))

    script = Path(__file__).resolve()
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        if not args.skip_efficiency:
            efficiency(Path(tmp), args, script)
        if not args.skip_memory:
            memory(Path(tmp), args)


if __name__ == "__main__":
    main()
