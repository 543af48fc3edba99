"""The prediction techniques, measured on places the models never saw (leave-one-place-out building folds).

    python pipelines/techniques_lopo.py --place kampala --place philippines [--folds runs/lopo_v2] \\
        [--second runs/lopo] [--out runs/techniques.json]

For each place, the fold model trained without it (``<folds>/<place>-pretrained/model.safetensors``, from
pipelines/building_lopo.py) is scored on every held-out scene of the place, through predict (--resample)
-> vectorize (splitting touching buildings) -> evaluate against the OpenStreetMap outlines, once per
technique:

- ``single``: the fold model alone;
- ``ensemble``: the fold model averaged with a second model of the same fold (``<second>/<place>-pretrained``:
  another training run, or another network such as a SegFormer trained with
  ``building_lopo.py train --set model.architecture=segformer``), equal weights;
- ``tta-flips`` and ``tta-d4``: test-time augmentation over 4 flips or the 8 rotations and flips;
- ``refine-guided``: class probabilities filtered with each tile as guide, so edges follow the image.

Building IoU and polygon F1 (IoU >= 0.5) are pooled over each place's scenes (the Kampala demo crop, which
is part of a Kampala scene, is reported but not pooled), with the seconds predict took.  Results go to
``--out`` as JSON and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from building_lopo import PLACES, REPO, _pool, _pool_pixels, held_out_scenes, score  # noqa: E402

TECHNIQUES = ("single", "ensemble", "tta-flips", "tta-d4", "refine-guided")


def technique_run(name: str, fold: Path, second: Path) -> tuple[Any, dict[str, Any]] | None:
    """The model(s) and predict options of technique ``name`` for one fold; None if its models are missing."""
    model = fold / "model.safetensors"
    if name == "single":
        return model, {}
    if name == "ensemble":
        other = second / "model.safetensors"
        return ([model, other], {}) if other.exists() else None
    if name.startswith("tta-"):
        return model, {"tta": name.removeprefix("tta-")}
    if name.startswith("refine-"):
        return model, {"refine": name.removeprefix("refine-")}
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--place", action="append", choices=PLACES, required=True)
    parser.add_argument("--folds", type=Path, default=REPO / "runs" / "lopo_v2")
    parser.add_argument("--second", type=Path, default=REPO / "runs" / "lopo")
    parser.add_argument("--technique", action="append", choices=TECHNIQUES, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "techniques.json")
    args = parser.parse_args()

    from geoseg.cluster import ClusterSpec, dask_client

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with dask_client(ClusterSpec(workers=1)) as client, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for place in args.place:
            fold, second = args.folds / f"{place}-pretrained", args.second / f"{place}-pretrained"
            entry = results.setdefault(place, {})
            for technique in args.technique or TECHNIQUES:
                run = technique_run(technique, fold, second)
                if run is None:
                    print(f"{place} {technique}: its model is missing; skipped", flush=True)
                    continue
                model, options = run
                scenes = {}
                for name, image, labels in held_out_scenes(place):
                    scenes[name] = score(model, image, labels, tmp, client, splits=(True,), **options)
                    print(place, technique, name, json.dumps(scenes[name]), flush=True)
                pooled = [r for n, r in scenes.items() if n != "kampala_demo"]
                entry[technique] = {
                    "scenes": scenes,
                    "pixel": _pool_pixels(pooled),
                    "split": _pool(pooled, "split"),
                    "predict_seconds": round(sum(r["predict_seconds"] for r in pooled), 1),
                }
                args.out.write_text(json.dumps(results, indent=1))
    print(f"{'place':<12} {'technique':<16} {'IoU':>6} {'F1@0.5':>7} {'predict s':>9}")
    for place, entry in results.items():
        for technique, row in entry.items():
            print(f"{place:<12} {technique:<16} {row['pixel']['iou']:>6.3f} {row['split']['f1']:>7.3f} "
                  f"{row['predict_seconds']:>9.1f}")


if __name__ == "__main__":
    main()
