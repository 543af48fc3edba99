"""Scale-out: geoseg.predict through an external Dask scheduler, with one and with two worker processes.

    python benchmarks/predict_scaleout.py [--size 8192] [--repeat 2] [--workers 1,2] [--threads 1]

The script starts ``dask scheduler`` and ``dask worker`` processes on
127.0.0.1 (one thread each by default, which decodes its own tiles), runs the null-network benchmark
(a 1x1 convolution: the pipeline is what is timed) through the scheduler, and
stops them.  Prints MPix/s per layout, the speed-up over one worker, whether
the outputs are byte-identical across layouts, and the load average (the
machine may be shared; on 2 cores the best possible speed-up is 2).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _predict_bench import HERE, child, emit, load, null_model, timed  # noqa: E402
from _scenes import KAMPALA, mirrored  # noqa: E402


@contextlib.contextmanager
def cluster(folder: Path, workers: int, threads: int, env: dict[str, str]) -> Iterator[str]:
    sched_file = folder / f"scheduler-{workers}.json"
    sched_file.unlink(missing_ok=True)
    dask = [sys.executable, "-m"]
    procs = [subprocess.Popen([*dask, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        for _ in range(600):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        procs += [subprocess.Popen([*dask, "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                                    "--nthreads", str(threads), "--host", "127.0.0.1", "--no-dashboard",
                                    "--name", str(i)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                  for i in range(workers)]
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=120) as c:
            c.wait_for_workers(workers, timeout=300)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def run_child(args: argparse.Namespace) -> None:
    import geoseg

    model = null_model()
    # A first, small run registers the model on every worker (imports, model set-up) before timing.
    options = dict(scheduler=args.scheduler, overlap=64, device=args.device, read_threads=args.read_threads or None,
                   overwrite=True)
    geoseg.predict(args.warmup, model, args.out, **options)
    emit(timed(lambda: geoseg.predict(args.scene, model, args.out, **options)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads", type=int, default=1, help="Threads per worker process.")
    parser.add_argument("--read-threads", type=int, default=0,
                        help="Decoding threads per block task (0: geoseg's default, the task's own thread on the CPU).")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", dest="what", choices=["predict"], help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what:
        return run_child(args)

    script = Path(__file__).resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    layouts = [int(w) for w in args.workers.split(",")]
    mpix = args.size * args.size / 1e6
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        folder = Path(tmp)
        scene = mirrored(KAMPALA, folder / "scene.tif", args.size)
        warmup = mirrored(KAMPALA, folder / "warmup.tif", 1024)
        for i in range(args.repeat):
            seconds, digests = {}, {}
            for workers in layouts:
                out = folder / f"out-{workers}.tif"
                with cluster(folder, workers, args.threads, env) as address:
                    before = load()
                    run = child(script, "predict", "--scene", str(scene), "--warmup", str(warmup), "--out",
                                str(out), "--scheduler", address, "--device", args.device, "--read-threads",
                                str(args.read_threads), env=env)
                seconds[workers] = run["seconds"]
                digests[workers] = hashlib.sha256(out.read_bytes()).hexdigest()
                emit({"run": i, "workers": workers, "threads_per_worker": args.threads,
                      "mpix_s": round(mpix / run["seconds"], 2), "seconds": round(run["seconds"], 1),
                      "load_before": before, "load_after": load()})
            base = seconds[layouts[0]]
            emit({"run": i, "speedup": {w: round(base / s, 2) for w, s in seconds.items()},
                  "byte_identical_across_layouts": len(set(digests.values())) == 1})


if __name__ == "__main__":
    main()
