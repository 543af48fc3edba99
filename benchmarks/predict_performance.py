"""geoseg predict: efficiency against a bare forward loop, peak memory, and throughput.

    python benchmarks/predict_performance.py [--efficiency-size 6144] [--memory-sizes 4096,16384]

1. Efficiency: the same DeepLabV3+ network on the same number of 512 px tiles,
   (a) as a bare loop of batched forward passes over tensors already in memory,
   (b) as ``geoseg predict`` end to end (CLI process: cluster start, reading, blending, writing the COG).
   Prints (a)/(b).
2. Memory: peak RSS (process + Dask workers) of ``geoseg predict`` with a small network on two scene sizes.
3. Throughput in MPix/s for each run.
Scenes are built by mirroring ../shared/data/kampala into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _scenes import KAMPALA, PeakRSS, mirrored  # noqa: E402


def build_model(path: Path, encoder: str, arch: str, arch_params: dict) -> Path:
    import torch

    import geoseg
    from geoseg.model.network import create_network

    card = geoseg.ModelCard(
        classes=["background", "building"], bands=["red", "green", "blue"],
        normalization={"mean": [120.0] * 3, "std": [60.0] * 3}, architecture=arch, encoder=encoder,
        arch_params=arch_params, tile_size=512,
    )
    torch.manual_seed(0)
    return geoseg.Model(create_network(card).eval(), card).save(path, overwrite=True)


def bare_loop(model_path: Path, tiles: int, batch: int) -> float:
    import torch

    import geoseg

    model = geoseg.load_model(model_path)
    x = torch.randn(batch, 3, 512, 512)
    with torch.inference_mode():
        model.network(x)  # warm-up
        start = time.perf_counter()
        for _ in range(0, tiles, batch):
            torch.softmax(model.network(x), dim=1)
    return time.perf_counter() - start


def run_predict(scene: Path, model: Path, out: Path, extra: list[str]) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "geoseg", "-q", "predict", str(scene), "--model", str(model), "--out", str(out), "--overwrite", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    with PeakRSS(proc.pid) as rss:
        code = proc.wait()
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"geoseg predict failed with exit code {code}")
    return seconds, rss.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--efficiency-size", type=int, default=6144)
    parser.add_argument("--memory-sizes", default="4096,16384")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--skip-efficiency", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    from geoseg.tiling import tile_grid

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_efficiency:
            size = args.efficiency_size
            scene = mirrored(KAMPALA, tmp / f"scene_{size}.tif", size)
            model = build_model(tmp / "deeplab.safetensors", args.encoder, "deeplabv3plus", {})
            n_tiles = len(tile_grid(size, size, 512, 64))
            bare = bare_loop(model, n_tiles, args.batch_size)
            end_to_end, peak = run_predict(scene, model, tmp / "out.tif", ["--batch-size", str(args.batch_size)])
            results["efficiency"] = {
                "scene": f"{size}x{size}", "tiles": n_tiles, "network": f"DeepLabV3+ {args.encoder}",
                "bare_loop_s": round(bare, 1), "geoseg_predict_s": round(end_to_end, 1),
                "ratio_bare_over_end_to_end": round(bare / end_to_end, 3),
                "throughput_mpix_s": round(size * size / 1e6 / end_to_end, 3),
                "bare_loop_mpix_s": round(size * size / 1e6 / bare, 3),
                "peak_rss_gb": round(peak / 2**30, 2),
            }
            print(json.dumps(results["efficiency"]), flush=True)
            scene.unlink()
        if not args.skip_memory:
            small = build_model(tmp / "small.safetensors", "resnet18", "unet", {"encoder_depth": 3, "decoder_channels": [16, 8, 4]})
            mem = {}
            for size in (int(s) for s in args.memory_sizes.split(",")):
                scene = mirrored(KAMPALA, tmp / f"scene_{size}.tif", size)
                seconds, peak = run_predict(scene, small, tmp / "mem.tif", ["--batch-size", str(args.batch_size)])
                mem[size] = {"seconds": round(seconds, 1), "peak_rss_gb": round(peak / 2**30, 3), "mpix_s": round(size * size / 1e6 / seconds, 2)}
                print(json.dumps({f"{size}x{size}": mem[size]}), flush=True)
                scene.unlink()
            sizes = sorted(mem)
            if len(sizes) >= 2:
                results["memory_ratio_largest_over_smallest"] = round(mem[sizes[-1]]["peak_rss_gb"] / mem[sizes[0]]["peak_rss_gb"], 3)
                print(json.dumps({"memory_ratio": results["memory_ratio_largest_over_smallest"],
                                  "pixel_ratio": (sizes[-1] / sizes[0]) ** 2}), flush=True)
            results["memory"] = mem
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
