"""Turn a trained building model into the model shipped with geoseg.

    geoseg train --config configs/train/shipped_buildings.yaml --out runs/buildings/buildings.safetensors
    python pipelines/ship_model.py runs/buildings/buildings.safetensors

Measures the model on the held-out Kampala crop (the bundled demo scene, see
pipelines/make_demo_data.py) with predict -> vectorize -> evaluate, records the
figures, the training data and its licences in the card, stores the weights as
float16 and checks the 25 MB limit before writing geoseg/model/weights/buildings.safetensors.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import geoseg
from geoseg.demo import DEMO_LABELS, DEMO_SCENE
from geoseg.model.file import SHIPPED_MODELS

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 25 * 1000 * 1000
TRAINING_DATA = [
    {
        "scene": "kampala/kampala_oam_cluster1_image.tif (Ggaba, Kampala, Uganda; 7.5 cm drone orthophoto, resampled to 15 cm)",
        "imagery_licence": "CC BY 4.0, OpenAerialMap (via HOT fAIr sample data)",
        "labels": "OpenStreetMap building outlines, (c) OpenStreetMap contributors, ODbL 1.0",
        "held_out": "the eastern third of the scene (validation strip; bundled as geoseg/data/kampala_demo.tif)",
    }
]


def _row(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["name"] == name)


def measure(model_path: Path, tile_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = geoseg.load_model(model_path)
        model = geoseg.Model(model.network, model.card.replace(tile_size=tile_size))
        geoseg.predict(DEMO_SCENE, model, tmp / "lc.tif", confidence=tmp / "conf.tif", resample=True)
        geoseg.vectorize(tmp / "lc.tif", tmp / "b.gpkg", confidence=tmp / "conf.tif", classes=["building"])
        m = geoseg.evaluate(tmp / "lc.tif", DEMO_LABELS, pred_vectors=tmp / "b.gpkg")
    pixel = _row(m["per_class"], "building")
    poly = _row(m["polygon_metrics"]["classes"], "building")
    return {
        "validation_scene": "geoseg/data/kampala_demo.tif (held out from training)",
        "inference_tile_size": tile_size,
        "building_iou": round(pixel["iou"], 4),
        "building_precision": round(pixel["precision"], 4),
        "building_recall": round(pixel["recall"], 4),
        "building_f1": round(pixel["f1"], 4),
        "mean_iou": round(m["mean_iou"], 4),
        "polygon_f1_iou50": round(poly["f1"], 4),
        "polygon_precision": round(poly["precision"], 4),
        "polygon_recall": round(poly["recall"], 4),
        "polygons": {"tp": poly["tp"], "fp": poly["fp"], "fn": poly["fn"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="model file written by geoseg train")
    parser.add_argument("--tile-size", type=int, nargs="+", default=[128, 256, 512],
                        help="inference tile sizes to try; the best on the held-out crop goes into the card")
    parser.add_argument("--out", type=Path, default=SHIPPED_MODELS["buildings"])
    args = parser.parse_args()

    started = time.perf_counter()
    results = [measure(args.model, t) for t in args.tile_size]
    for r in results:
        print(json.dumps(r))
    best = max(results, key=lambda r: (r["building_iou"], r["inference_tile_size"]))
    report_path = args.model.parent / "training_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    model = geoseg.load_model(args.model)
    metadata = dict(model.card.metadata)
    metadata.update({
        "name": "buildings",
        "description": "Building footprints from RGB aerial or drone imagery at 15-60 cm",
        "training_data": TRAINING_DATA,
        "training_config": "configs/train/shipped_buildings.yaml",
        "training_command": "geoseg train --config configs/train/shipped_buildings.yaml --out runs/buildings/buildings.safetensors",
        "training_tile_size": model.card.tile_size,
        "training_epochs": len(report.get("epochs", [])) or None,
        "best_epoch": report.get("best"),
        "training_seconds": report.get("seconds"),
        "training_machine": f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores, no GPU",
        "validation": best,
        "licence": "weights: CC BY 4.0 (attribution: OpenAerialMap contributors; (c) OpenStreetMap contributors)",
    })
    card = model.card.replace(tile_size=best["inference_tile_size"], metadata=metadata)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    geoseg.Model(model.network, card).save(args.out, overwrite=True, weights_dtype="float16")
    size = args.out.stat().st_size
    if size > MAX_BYTES:
        args.out.unlink()
        raise SystemExit(f"{args.out} would be {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")
    print(f"{args.out}: {size / 1e6:.1f} MB; validation {json.dumps(best)} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
