"""geoseg predict on a GPU: DeepLabV3+ ResNet-34 in float16 on a large scene, how busy the GPU is, and the
null-network ceiling there.  One run of a few minutes on one GPU:

    python benchmarks/predict_gpu.py [--size 16384] [--device cuda:0] [--batch-size 16] [--bare-size 8192]
                                     [--ceiling-size 8192]

1. Builds the scene on the machine that runs it (mirrored from ../shared/data/kampala) and a randomly
   initialised DeepLabV3+ (ResNet-34) model file.
2. Bare loop: batched forward passes and softmax (float16 autocast on CUDA) over the tiles of a
   ``--bare-size`` scene, already normalised and on the device: the network's own speed, in MPix/s.
3. End to end: ``geoseg.predict`` on the whole scene in a fresh process, after a small run that initialises
   CUDA and the model there; MPix/s, and the GPU's utilisation sampled by ``nvidia-smi`` every 100 ms
   while it runs (mean, and the share of samples at 90 % or more; none without ``nvidia-smi``).
4. The null-network ceiling there: ``predict_ceiling.py`` at ``--ceiling-size``, reading on every core.

Prints JSON lines, each with the load average.  Without a GPU it runs on the CPU with the sizes given, which
checks the script; its figures then say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _predict_bench import child, emit, load, smp_model_file, timed  # noqa: E402
from _scenes import KAMPALA, mirrored  # noqa: E402
from predict_performance import bare_loop  # noqa: E402

WARMUP_SIZE = 1024


class GpuBusy:
    """``nvidia-smi``'s utilisation of one GPU, sampled every 100 ms in a process of its own while in the block."""

    def __init__(self, device: str) -> None:
        index = device.split(":")[1] if ":" in device else "0"
        self._cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100",
                     "-i", index]
        self.samples: list[int] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        try:
            self._proc = subprocess.Popen(self._cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except FileNotFoundError:
            return self
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip().isdigit():
                self.samples.append(int(line))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)

    def summary(self) -> dict[str, float | int | None]:
        if not self.samples:
            return {"gpu_busy_mean_pct": None, "gpu_samples": 0}
        busy = sum(s >= 90 for s in self.samples) / len(self.samples)
        return {"gpu_busy_mean_pct": round(sum(self.samples) / len(self.samples), 1),
                "gpu_samples_at_90pct_or_more": round(busy, 3), "gpu_samples": len(self.samples)}


def run_child(args: argparse.Namespace) -> None:
    import geoseg

    options = dict(device=args.device, batch_size=args.batch_size, overlap=64, overwrite=True)
    geoseg.predict(args.warmup, args.model, args.out, **options)  # CUDA, cuDNN and the model, before the clock
    emit(timed(lambda: geoseg.predict(args.scene, args.model, args.out, **options)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--bare-size", type=int, default=8192)
    parser.add_argument("--ceiling-size", type=int, default=8192)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--child", dest="what", choices=["predict", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what == "predict":
        return run_child(args)
    if args.what == "bare":
        return emit(bare_loop(args.model, args.scene, args.batch_size, args.device, 1))

    script = Path(__file__).resolve()
    env = {"PYTHONPATH": os.pathsep.join([str(script.parent), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        scene = mirrored(KAMPALA, folder / "scene.tif", args.size)
        bare_scene = mirrored(KAMPALA, folder / "bare.tif", args.bare_size)
        warmup = mirrored(KAMPALA, folder / "warmup.tif", WARMUP_SIZE)
        model = smp_model_file(folder / "deeplab.safetensors", "deeplabv3plus", "resnet34")
        emit({"scene": f"{args.size}x{args.size}", "device": args.device, "batch_size": args.batch_size,
              "cpus": os.cpu_count(), "load": load()})

        bare = child(script, "bare", "--model", str(model), "--scene", str(bare_scene), "--batch-size",
                     str(args.batch_size), "--device", args.device, env=env)
        emit({"bare_loop": f"{args.bare_size}x{args.bare_size}", "seconds": round(bare["seconds"], 2),
              "mpix_s": round(args.bare_size**2 / 1e6 / bare["seconds"], 1), "load": load()})

        with GpuBusy(args.device) as busy:
            run = child(script, "predict", "--scene", str(scene), "--warmup", str(warmup), "--model", str(model),
                        "--out", str(folder / "out.tif"), "--device", args.device, "--batch-size",
                        str(args.batch_size), env=env)
        emit({"end_to_end": f"{args.size}x{args.size}", "seconds": round(run["seconds"], 2),
              "mpix_s": round(args.size**2 / 1e6 / run["seconds"], 1), "cpu_seconds": round(run["cpu_seconds"], 1),
              **busy.summary(), "goal_mpix_s": 150, "load": load()})

    ceiling = [sys.executable, str(script.parent / "predict_ceiling.py"), "--size", str(args.ceiling_size),
               "--repeat", "2", "--device", args.device, "--threads", str(os.cpu_count() or 1)]
    subprocess.run(ceiling, check=True)


if __name__ == "__main__":
    main()
