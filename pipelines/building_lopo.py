"""Leave-one-place-out folds of the building model: train without a place, then score on it.

    python pipelines/building_lopo.py train --place kampala [--variant pretrained|random] [--out runs/lopo]
    python pipelines/building_lopo.py evaluate --place kampala --place philippines [--out runs/lopo]

``train`` writes ``<out>/<place>-<variant>/fold.yaml`` (configs/train/buildings_five_places.yaml without
the place's scenes; ``--variant random`` starts the encoder from random weights instead of ImageNet's) and
trains it there (``--resume`` continues an interrupted fold).  ``evaluate`` scores, on
every held-out scene of each place: the fold's model with and without splitting touching buildings
(``geoseg vectorize --no-split``), and the currently shipped model (``--baseline``), all through
predict (--resample) -> vectorize -> evaluate against the OpenStreetMap outlines.  It pools pixels and
polygons over the place's scenes and writes ``<out>/lopo.json``, which pipelines/ship_model.py puts in
the model card.

Kampala is also scored on the bundled demo crop (geoseg/data/kampala_demo.tif), the part of the scene
the old shipped model never saw, so that old and new models are compared on the same held-out pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "train" / "buildings_five_places.yaml"
DATA = Path(os.environ.get("GEOSEG_DATA", REPO.parent / "shared" / "data"))
PLACES = ("kampala", "zanzibar", "banepa_outskirts", "philippines", "nairobi")
#: Validation scenes (held out whole to pick the best epoch), first one not from the held-out place.
VALIDATION = ("banepa_outskirts_c2_image.tif", "philippines_c2_image.tif")


def place_of(image: str) -> str:
    name = Path(image).name
    return next(p for p in PLACES if name.startswith(p))


def fold_config(place: str, variant: str) -> dict[str, Any]:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data_root"] = str(DATA)
    raw["scenes"] = [s for s in raw["scenes"] if place_of(s["image"]) != place]
    raw["validation"]["scenes"] = [next(v for v in VALIDATION if place_of(v) != place)]
    if variant == "random":
        raw["model"]["encoder_weights"] = None
    return raw


def train(args: argparse.Namespace) -> None:
    import geoseg

    for place in args.place:
        folder = args.out / f"{place}-{args.variant}"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "fold.yaml"
        config.write_text(yaml.safe_dump(fold_config(place, args.variant), sort_keys=False))
        model = folder / "model.safetensors"
        started = time.perf_counter()
        resume = args.resume and (folder / "model.run" / "last.ckpt").exists()
        result = geoseg.train(config, model, overrides=args.set, overwrite=not resume, resume=resume,
                              progress=False)
        print(f"{place} ({args.variant}): {result.epochs} epochs, best {result.best_epoch} "
              f"(val mIoU {result.best_miou:.3f}) in {time.perf_counter() - started:.0f} s", flush=True)


def held_out_scenes(place: str) -> list[tuple[str, Path, Path]]:
    """``(name, image, labels)`` of every scene of ``place`` (and the demo crop for Kampala)."""
    from geoseg.demo import DEMO_LABELS, DEMO_SCENE

    raw = yaml.safe_load(CONFIG.read_text())
    out = [(Path(s["image"]).stem.removesuffix("_image"), DATA / s["image"], DATA / s["labels"])
           for s in raw["scenes"] if place_of(s["image"]) == place]
    if place == "kampala":
        out.append(("kampala_demo", DEMO_SCENE, DEMO_LABELS))
    return out


def _building(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in rows if r["name"] == "building")


def score(model: str | Path | list[str | Path], image: Path, labels: Path, tmp: Path, client: Any, *,
          splits: tuple[bool, ...], tuned: tuple[float, float] | None = None, **predict_options: Any) -> dict:
    """predict -> vectorize (with and/or without the split) -> evaluate; counts to pool over scenes.

    Vectorize runs with geoseg's defaults for classes without recommendations (minimum area 4 m², seeds 1 m²),
    whatever the model's card recommends, so that models compare on the same settings; ``tuned`` (minimum area,
    seed area) adds a split with those settings (``split_tuned``).  ``model`` may be a list (an ensemble);
    ``predict_options`` go to :func:`geoseg.predict` (e.g. ``tta``).
    """
    import geoseg
    from geoseg.vectorization.options import DEFAULT_MIN_AREA, DEFAULT_MIN_SEED_AREA

    lc, conf = tmp / "landcover.tif", tmp / "confidence.tif"
    started = time.perf_counter()
    geoseg.predict(image, model, lc, confidence=conf, resample=True, client=client, overwrite=True,
                   **predict_options)
    out: dict[str, Any] = {"predict_seconds": round(time.perf_counter() - started, 1)}
    runs = [("split" if split else "no_split", split, DEFAULT_MIN_AREA, DEFAULT_MIN_SEED_AREA) for split in splits]
    if tuned is not None:
        runs.append(("split_tuned", True, *tuned))
    for key, split, min_area, min_seed_area in runs:
        gpkg = tmp / f"buildings-{key}.gpkg"
        geoseg.vectorize(lc, gpkg, confidence=conf, classes=["building"], client=client, overwrite=True, split=split,
                         min_area=min_area, min_seed_area=min_seed_area)
        metrics = geoseg.evaluate(lc, labels, pred_vectors=gpkg)
        pixel = _building(metrics["per_class"])
        poly = _building(metrics["polygon_metrics"]["classes"])
        out["pixel"] = {k: pixel.get(k) for k in ("iou", "precision", "recall", "tp", "fp", "fn", "support")}
        out[key] = {k: poly.get(k) for k in ("tp", "fp", "fn", "f1", "precision", "recall")}
    return out


def _pool(scenes: list[dict[str, Any]], key: str) -> dict[str, Any]:
    tp = sum(s[key]["tp"] for s in scenes)
    fp = sum(s[key]["fp"] for s in scenes)
    fn = sum(s[key]["fn"] for s in scenes)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "f1": None if f1 is None else round(f1, 4)}


def _pool_pixels(scenes: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(s["pixel"]["tp"] for s in scenes)
    fp = sum(s["pixel"]["fp"] for s in scenes)
    fn = sum(s["pixel"]["fn"] for s in scenes)
    return {"tp": tp, "fp": fp, "fn": fn, "iou": round(tp / (tp + fp + fn), 4) if tp + fp + fn else None}


def evaluate(args: argparse.Namespace) -> None:
    from geoseg.cluster import ClusterSpec, dask_client

    results_path = args.out / "lopo.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with dask_client(ClusterSpec(workers=1)) as client, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for place in args.place:
            model = args.out / f"{place}-{args.variant}" / "model.safetensors"
            entry: dict[str, Any] = {"model": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
                                     "variant": args.variant, "scenes": {}}
            for name, image, labels in held_out_scenes(place):
                row: dict[str, Any] = {"new": score(model, image, labels, tmp, client, splits=(True, False),
                                                    tuned=args.tuned)}
                if args.baseline:
                    row["shipped"] = score(args.baseline, image, labels, tmp, client, splits=(False,))
                entry["scenes"][name] = row
                print(place, name, json.dumps(row), flush=True)
            pooled = [r for n, r in entry["scenes"].items() if n != "kampala_demo"]
            entry["pooled"] = {
                "new_pixel": _pool_pixels([r["new"] for r in pooled]),
                "new_split": _pool([r["new"] for r in pooled], "split"),
                "new_no_split": _pool([r["new"] for r in pooled], "no_split"),
            }
            if args.tuned is not None:
                entry["pooled"]["new_split_tuned"] = _pool([r["new"] for r in pooled], "split_tuned")
            if args.baseline:
                entry["pooled"]["shipped_pixel"] = _pool_pixels([r["shipped"] for r in pooled])
                entry["pooled"]["shipped_no_split"] = _pool([r["shipped"] for r in pooled], "no_split")
            results[f"{place}-{args.variant}"] = entry
            results_path.write_text(json.dumps(results, indent=1))
            print(place, json.dumps(entry["pooled"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("train", "evaluate"):
        p = sub.add_parser(name)
        p.add_argument("--place", action="append", choices=PLACES, required=True)
        p.add_argument("--variant", choices=("pretrained", "random"), default="pretrained")
        p.add_argument("--out", type=Path, default=REPO / "runs" / "lopo")
        if name == "train":
            p.add_argument("--set", action="append", default=[], help="config override, as for geoseg train")
            p.add_argument("--resume", action="store_true")
        else:
            p.add_argument("--baseline", default=None, help="also score this model (e.g. the shipped 'buildings')")
            p.add_argument("--tuned", type=lambda t: tuple(float(x) for x in t.split(",")), default=None,
                           metavar="MIN_AREA,MIN_SEED_AREA", help="also vectorize with these settings (m²), e.g. 20,4")
    args = parser.parse_args()
    train(args) if args.step == "train" else evaluate(args)


if __name__ == "__main__":
    main()
