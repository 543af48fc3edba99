"""Turn a trained building model into the model shipped with geoseg.

    geoseg train --config configs/train/buildings_five_places.yaml --out runs/buildings/buildings.safetensors
    python pipelines/building_lopo.py train --place kampala --place zanzibar --place banepa_outskirts \\
        --place philippines --place nairobi --out runs/lopo
    python pipelines/building_lopo.py evaluate --place kampala --place zanzibar --place banepa_outskirts \\
        --place philippines --place nairobi --out runs/lopo --baseline buildings    # before shipping
    python pipelines/ship_model.py runs/buildings/buildings.safetensors \\
        --config configs/train/buildings_five_places.yaml --lopo runs/lopo/lopo.json

Measures the model, and the model shipped now, on the held-out Kampala crop (the bundled demo scene,
see pipelines/make_demo_data.py; held out from the training of both) with predict -> vectorize ->
evaluate.  With ``--lopo``, it refuses to ship unless the recipe's leave-one-place-out folds beat the model
they replace on the places that model never trained on (pooled building IoU and polygon F1): a model is for
imagery of places it never saw, and a model trained on one city is not held out from that city's crop.
Without ``--lopo`` it refuses a model worse on the Kampala crop.  ``--force`` ships anyway.

Records the figures, the leave-one-place-out figures of pipelines/building_lopo.py, the resolution range,
the training places and their licences in the card, and the vectorize settings it recommends for buildings
(:data:`VECTORIZE`; predict writes them into the class raster, vectorize uses them by default), stores the
weights as float16 and checks the 25 MB
limit before writing geoseg/model/weights/buildings.safetensors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import geoseg
from geoseg.demo import DEMO_LABELS, DEMO_SCENE
from geoseg.model.file import SHIPPED_MODELS
from geoseg.training.api import report_path_for

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 25 * 1000 * 1000
#: Vectorize settings the card recommends (geoseg vectorize uses them unless told otherwise).  Chosen leave one
#: place out: of minimum areas 4, 10 and 20 m² x seed areas 1 and 4 m², 20 and 4 gave the best pooled polygon F1
#: on every three of the four new places, and then on the fourth (0.25 -> 0.33 pooled; see the README).
VECTORIZE = {"building": {"min_area": 20.0, "min_seed_area": 4.0}}
_OAM = "CC BY 4.0, OpenAerialMap contributors (via HOT fAIr training data)"
_OSM = "OpenStreetMap building outlines, (c) OpenStreetMap contributors, ODbL 1.0"
#: Data folders a shipped model may be trained on -> (place, imagery licence).  Anything else (the Massachusetts
#: sample, say, whose terms allow testing only) is refused.
PLACES = {
    "kampala/": ("Ggaba, Kampala, Uganda (peri-urban, dense)",
                 "CC BY 4.0, OpenAerialMap contributors (via HOT fAIr sample data)"),
    "oam_buildings/zanzibar/": ("rural Unguja, Zanzibar, Tanzania", _OAM),
    "oam_buildings/banepa_outskirts/": ("Banepa outskirts, Nepal", _OAM),
    "oam_buildings/philippines/": ("Bicol, Philippines (small tin roofs under palms)", _OAM),
    "oam_buildings/nairobi/": ("Nairobi, Kenya (estates; upsampled satellite-like imagery, effective 0.3-0.5 m)", _OAM),
}


def training_data(config: Path) -> list[dict[str, Any]]:
    """Per training scene of ``config``: place, file, licences and what was held out for validation."""
    import yaml

    raw = yaml.safe_load(config.read_text())
    validation = raw.get("validation") or {}
    held_whole = set(validation.get("scenes") or ())
    resolution = raw.get("resolution")
    rows = []
    for scene in raw["scenes"]:
        image = str(scene["image"])
        prefix = next((p for p in PLACES if image.startswith(p)), None)
        if prefix is None:
            raise SystemExit(f"{image}: no licence for shipping is known for this data; see ../shared/data/README.md")
        place, licence = PLACES[prefix]
        row: dict[str, Any] = {
            "place": place,
            "scene": image + (f" (resampled to {resolution:g} m)" if resolution else ""),
            "imagery_licence": licence,
            "labels": _OSM,
        }
        if Path(image).name in held_whole:
            row["held_out"] = "the whole scene (validation, picks the best epoch)"
        elif scene.get("hold_out"):
            a, b = scene["hold_out"]
            row["held_out"] = f"columns {a:.0%}-{b:.0%} of its width (validation; the bundled demo crop)"
        elif validation.get("mode", "strips") == "strips":
            share, strips = validation.get("fraction", 0.2), validation.get("strips", 5)
            row["held_out"] = f"{share:.0%} of {strips} vertical strips (validation; for Kampala the bundled demo crop)"
        rows.append(row)
    return rows


def _row(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["name"] == name)


def measure(model_path: Path, tile_size: int | None, *, split: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = geoseg.load_model(model_path)
        tile_size = tile_size or model.card.tile_size
        model = geoseg.Model(model.network, model.card.replace(tile_size=tile_size))
        geoseg.predict(DEMO_SCENE, model, folder / "lc.tif", confidence=folder / "conf.tif", resample=True)
        geoseg.vectorize(folder / "lc.tif", folder / "b.gpkg", confidence=folder / "conf.tif", classes=["building"],
                         split=split, **VECTORIZE["building"])  # as shipped, for the candidate and the baseline
        m = geoseg.evaluate(folder / "lc.tif", DEMO_LABELS, pred_vectors=folder / "b.gpkg")
    pixel = _row(m["per_class"], "building")
    poly = _row(m["polygon_metrics"]["classes"], "building")
    return {
        "validation_scene": "geoseg/data/kampala_demo.tif (held out from training)",
        "inference_tile_size": tile_size,
        "split_touching_buildings": split,
        "vectorize": VECTORIZE["building"],
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


def lopo_summary(path: Path) -> dict[str, Any]:
    """The leave-one-place-out figures of pipelines/building_lopo.py, per held-out place."""
    results = json.loads(path.read_text())
    out: dict[str, Any] = {
        "method": "the shipped recipe trained without the place, scored on all of its scenes (pooled pixels and "
                  "polygons) with predict --resample -> vectorize -> evaluate; 'shipped_before' is the model this "
                  "one replaced, on the same scenes",
        "places": {},
    }
    for key, entry in results.items():
        place, variant = key.rsplit("-", 1)
        pooled = entry["pooled"]
        row = {
            "variant": variant,
            "scenes": sorted(n for n in entry["scenes"] if n != "kampala_demo"),
            "building_iou": pooled["new_pixel"]["iou"],
            "polygon_f1_iou50_split": pooled["new_split"]["f1"],
            "polygon_f1_iou50_no_split": pooled["new_no_split"]["f1"],
        }
        if "new_split_tuned" in pooled:  # with the settings the card recommends
            row["polygon_f1_iou50_split_recommended"] = pooled["new_split_tuned"]["f1"]
        if "shipped_pixel" in pooled:
            row["shipped_before"] = {"building_iou": pooled["shipped_pixel"]["iou"],
                                     "polygon_f1_iou50": pooled["shipped_no_split"]["f1"]}
        demo = entry["scenes"].get("kampala_demo")
        if demo is not None:  # the Kampala strip neither the fold model nor the model replaced trained on
            row["kampala_demo_crop"] = {
                "building_iou": round(demo["new"]["pixel"]["iou"], 4),
                "polygon_f1_iou50_split": round(demo["new"]["split"]["f1"], 4),
                "polygon_f1_iou50_no_split": round(demo["new"]["no_split"]["f1"], 4),
            }
            if "shipped" in demo:
                row["kampala_demo_crop"]["shipped_before"] = {
                    "building_iou": round(demo["shipped"]["pixel"]["iou"], 4),
                    "polygon_f1_iou50": round(demo["shipped"]["no_split"]["f1"], 4),
                }
            if "shipped_pixel" in pooled:
                row["note"] = ("the model replaced was trained on the western two thirds of the Kampala scene, so "
                               "only kampala_demo_crop compares the two on unseen pixels")
        out["places"][key] = row
    return out


def _places_of(card_metadata: dict[str, Any]) -> set[str]:
    """The building_lopo place names a model's card lists among its training scenes."""
    from building_lopo import PLACES as LOPO_PLACES

    scenes = [str(row.get("scene", "")) for row in card_metadata.get("training_data") or []]
    return {p for p in LOPO_PLACES for scene in scenes if Path(scene.split(" ")[0]).name.startswith(p)}


def unseen_places_comparison(lopo: Path, baseline_metadata: dict[str, Any]) -> dict[str, Any]:
    """The candidate recipe (its leave-one-place-out folds) against the model it replaces, pooled over the places
    the replaced model never trained on: building IoU from pooled pixels, polygon F1 from pooled polygons (the
    candidate with splitting; the replaced model as it shipped, without)."""
    results = json.loads(lopo.read_text())
    seen = _places_of(baseline_metadata)
    totals = {k: {"tp": 0, "fp": 0, "fn": 0} for k in ("new_pixel", "new_split", "shipped_pixel", "shipped_no_split")}
    places = []
    for key, entry in results.items():
        place = key.rsplit("-", 1)[0]
        if place in seen or "shipped_pixel" not in entry["pooled"]:
            continue
        places.append(place)
        for name, total in totals.items():
            for k in total:
                total[k] += entry["pooled"][name][k]

    def iou(t: dict[str, int]) -> float:
        return round(t["tp"] / max(1, t["tp"] + t["fp"] + t["fn"]), 4)

    def f1(t: dict[str, int]) -> float:
        return round(2 * t["tp"] / max(1, 2 * t["tp"] + t["fp"] + t["fn"]), 4)

    return {
        "places": sorted(places),
        "places_the_replaced_model_trained_on": sorted(seen),
        "new": {"building_iou": iou(totals["new_pixel"]), "polygon_f1_iou50": f1(totals["new_split"])},
        "replaced": {"building_iou": iou(totals["shipped_pixel"]), "polygon_f1_iou50": f1(totals["shipped_no_split"])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="model file written by geoseg train")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "train" / "buildings_five_places.yaml",
                        help="the training config of the model (for the card's training data and licences)")
    parser.add_argument("--tile-size", type=int, nargs="+", default=[256, 512],
                        help="inference tile sizes to try; the best on the held-out crop goes into the card")
    parser.add_argument("--lopo", type=Path, default=None, help="lopo.json written by pipelines/building_lopo.py")
    parser.add_argument("--baseline", type=Path, default=SHIPPED_MODELS["buildings"],
                        help="the model to beat on the held-out crop [default: the shipped one]")
    parser.add_argument("--force", action="store_true", help="ship even if the baseline is better")
    parser.add_argument("--out", type=Path, default=SHIPPED_MODELS["buildings"])
    args = parser.parse_args()

    started = time.perf_counter()
    results = [measure(args.model, t) for t in args.tile_size]
    for r in results:
        print(json.dumps(r))
    best = max(results, key=lambda r: (r["building_iou"] + r["polygon_f1_iou50"], r["inference_tile_size"]))
    without_split = measure(args.model, best["inference_tile_size"], split=False)
    baseline = measure(args.baseline, None, split=False) if args.baseline.exists() else None
    print("without split:", json.dumps(without_split))
    print("baseline:", json.dumps(baseline))
    unseen = None
    if baseline is not None and args.lopo is not None:
        unseen = unseen_places_comparison(args.lopo, geoseg.read_card(args.baseline).metadata)
        print("places the replaced model never saw:", json.dumps(unseen))
    if baseline is not None and not args.force:
        if unseen is not None and unseen["places"]:  # what a model is for: imagery of places it never saw
            new, old = unseen["new"], unseen["replaced"]
            where = f"on {', '.join(unseen['places'])} (leave one place out)"
        else:
            new, old, where = best, baseline, "on the held-out Kampala crop"
        if new["building_iou"] < old["building_iou"] or new["polygon_f1_iou50"] < old["polygon_f1_iou50"]:
            raise SystemExit(f"not shipped: {args.baseline} does better {where} ({json.dumps(old)} against "
                             f"{json.dumps(new)}); pass --force to ship anyway")
    config_name = str(args.config.resolve().relative_to(REPO)) if args.config.resolve().is_relative_to(REPO) \
        else str(args.config)
    training_data(args.config)  # refuses data without a licence for shipping, before anything is measured
    report_path = report_path_for(args.model)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    model = geoseg.load_model(args.model)
    lo, hi = model.card.resolution_range or (None, None)
    metadata = dict(model.card.metadata)
    metadata.update({
        "name": "buildings",
        "description": (
            f"Building footprints from RGB drone or aerial imagery at {lo:g}-{hi:g} m (read at "
            f"{model.card.resolution:g} m: predict with --resample); predicts building body, border and contact so "
            "that vectorize splits touching buildings; the land-cover map shows the three as 'building'"
        ),
        "resolution_range_m": [lo, hi],
        "training_data": training_data(args.config),
        "training_config": config_name,
        "training_command": f"geoseg train --config {config_name} --out runs/buildings/buildings.safetensors",
        "training_tile_size": model.card.tile_size,
        "training_epochs": len(report.get("epochs", [])) or None,
        "best_epoch": report.get("best"),
        "training_seconds": report.get("seconds"),
        "training_machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, no GPU",
        "validation": best,
        "validation_without_split": without_split,
        "validation_model_replaced": baseline,
        "places_the_replaced_model_never_saw": unseen,
        "licence": "weights: CC BY 4.0 (attribution: imagery OpenAerialMap contributors, CC BY 4.0; "
                   "labels (c) OpenStreetMap contributors, ODbL 1.0)",
    })
    if args.lopo is not None:
        metadata["leave_one_place_out"] = lopo_summary(args.lopo)
    card = model.card.replace(tile_size=best["inference_tile_size"], vectorize=VECTORIZE, metadata=metadata)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    geoseg.Model(model.network, card).save(args.out, overwrite=True, weights_dtype="float16")
    size = args.out.stat().st_size
    if size > MAX_BYTES:
        args.out.unlink()
        raise SystemExit(f"{args.out} would be {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")
    print(f"{args.out}: {size / 1e6:.1f} MB; validation {json.dumps(best)} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
