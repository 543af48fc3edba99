"""What each prediction technique costs: seconds per megapixel of geoseg predict, and the ratio to one model.

    python benchmarks/predict_techniques.py [--model buildings] [--size 2048] [--repeat 2]

Runs ``geoseg.predict`` in this process on a scene mirrored from ../shared/data/kampala (``--size`` pixels
square, at the scene's own resolution), once per technique and repeat, in turn, so that machine load
touches every technique alike: one model, an ensemble of the model with itself (two networks per tile),
``--tta flips`` (4 views), ``--tta d4`` (8 views) and ``--refine guided``.  Prints one JSON line per run
and, at the end, the median seconds per megapixel of each technique and its ratio to one model.  The load
average is printed with each run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _predict_bench import emit, load  # noqa: E402
from _scenes import KAMPALA, mirrored  # noqa: E402

TECHNIQUES: dict[str, dict[str, object]] = {
    "one model": {},
    "ensemble of 2": {"ensemble": 2},
    "tta flips": {"tta": "flips"},
    "tta d4": {"tta": "d4"},
    "refine guided": {"refine": "guided"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="buildings")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import geoseg

    model = geoseg.load_model(args.model)
    seconds: dict[str, list[float]] = {name: [] for name in TECHNIQUES}
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as tmp:
        scene = mirrored(KAMPALA, Path(tmp) / "scene.tif", args.size)
        mpix = args.size * args.size / 1e6
        for i in range(args.repeat):
            for name, options in TECHNIQUES.items():
                kwargs = dict(options)
                models = [model] * int(kwargs.pop("ensemble", 1))
                before = load()
                started = time.perf_counter()
                geoseg.predict(scene, models if len(models) > 1 else model, Path(tmp) / "out.tif", overwrite=True,
                               **kwargs)  # type: ignore[arg-type]
                took = time.perf_counter() - started
                seconds[name].append(took)
                emit({"run": i, "technique": name, "seconds": round(took, 2), "s_per_mpix": round(took / mpix, 3),
                      "load_before": before, "load_after": load()})
    base = statistics.median(seconds["one model"])
    print(f"{'technique':<15} {'s/MPix':>8} {'x one model':>12}")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        print(f"{name:<15} {median / mpix:>8.2f} {median / base:>12.2f}")


if __name__ == "__main__":
    main()
