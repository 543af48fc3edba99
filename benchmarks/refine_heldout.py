"""Does edge-aware refinement (geoseg.prediction.refine) raise held-out building IoU, and what does it cost?

    python benchmarks/refine_heldout.py [--fold kampala --fold philippines] [--runs runs/lopo_v2] [--no-crf]

For each leave-one-place-out fold (``<runs>/<place>-pretrained/model.safetensors``, trained without the
place; see pipelines/building_lopo.py), every held-out scene of the place (the ``_mask.tif`` truth beside
each image, on the image grid, 255 = no data) is run through the fold's model at the model's ground
resolution (0.3 m; the scenes are 7.5 cm, read with average resampling, one network call per scene).
Part probabilities (border, contact) are added to their object class.  Then, building IoU of the arg-max,
pooled over each fold's scenes, with and without refinement, on two grids:

* ``model``: at 0.3 m, against the truth read at 0.3 m (mode resampling), the image at 0.3 m as guide;
* ``native``: the probabilities resampled bilinearly to the scene's 7.5 cm grid (the baseline), the full
  resolution image as guide, against the truth as it is; refined in 1024 px windows with a halo.

Refinement costs are wall-clock milliseconds per megapixel of refined grid (torch on this machine's
CPU threads); they depend on the method and the number of classes (2 here), not on the radius.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipelines"))

#: (method, params) at the model's grid, 0.3 m a pixel.
MODEL_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("guided", {"radius": 1, "eps": 1e-2}),
    ("guided", {"radius": 2, "eps": 1e-2}),
    ("guided", {"radius": 2, "eps": 1e-3}),
    ("guided", {"radius": 4, "eps": 1e-2}),
    ("box", {"radius": 2}),
    ("box", {"radius": 4}),
    ("crf", {"radius": 2, "step": 1, "theta_xy": 1.5, "theta_rgb": 0.08, "weight": 3.0, "iterations": 5}),
]
#: (method, params) at the scenes' grid, 7.5 cm a pixel (4 pixels of it are one model pixel).
NATIVE_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("guided", {"radius": 4, "eps": 1e-2}),
    ("guided", {"radius": 8, "eps": 1e-2}),
    ("guided", {"radius": 8, "eps": 1e-3}),
    ("guided", {"radius": 16, "eps": 1e-2}),
    ("guided", {"radius": 16, "eps": 1e-3}),
    ("guided", {"radius": 32, "eps": 1e-2}),
    ("box", {"radius": 16}),
    ("box", {"radius": 32}),
    ("crf", {"radius": 6, "step": 2, "theta_xy": 4.0, "theta_rgb": 0.08, "weight": 3.0, "iterations": 5}),
]
WINDOW = 1024


def truth_path(image: Path) -> Path | None:
    """The raster truth beside a scene (``x_image.tif`` -> ``x_mask.tif``), or None."""
    if not image.name.endswith("_image.tif"):
        return None
    path = image.with_name(image.name.removesuffix("_image.tif") + "_mask.tif")
    return path if path.exists() else None


def display_probs(probs: torch.Tensor, card: Any) -> torch.Tensor:
    """(1, C, H, W) network probabilities -> (1, D, H, W) over the display classes (parts added to their class)."""
    ids = list(card.class_ids)
    shown = [c.id for c in card.display_classes]
    out = torch.zeros(probs.shape[0], len(shown), *probs.shape[2:])
    for k, cid in enumerate(ids):
        out[:, shown.index(card.display_id(cid))] += probs[:, k]
    return out


def model_probs(model: Any, image: np.ndarray) -> torch.Tensor:
    """Softmax probabilities of ``image`` (B, h, w uint8) in one network call, padded to a multiple of 32."""
    from geoseg.model.preprocess import normalise

    b, h, w = image.shape
    x = torch.from_numpy(normalise(image, np.ones((h, w), bool), model.card.normalization))[None]
    ph, pw = (-h) % 32, (-w) % 32
    x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    with torch.inference_mode():
        logits = model.network.float()(x)[:, :, :h, :w]
    return display_probs(logits.float().softmax(dim=1), model.card)


def counts(pred: np.ndarray, truth: np.ndarray, cls: int = 1) -> np.ndarray:
    valid = truth != 255
    p, t = (pred == cls) & valid, (truth == cls) & valid
    return np.array([(p & t).sum(), (p & ~t).sum(), (~p & t).sum()], dtype=np.int64)


def iou(c: np.ndarray) -> float:
    return float(c[0] / max(1, c.sum()))


def windows(h: int, w: int, size: int) -> list[tuple[int, int, int, int]]:
    return [(r, c, min(size, h - r), min(size, w - c)) for r in range(0, h, size) for c in range(0, w, size)]


def refine_windowed(probs: torch.Tensor, guide: torch.Tensor, method: str, params: dict[str, Any],
                    halo: int) -> torch.Tensor:
    """Refine (1, C, H, W) probabilities in WINDOW-sized pieces, each with ``halo`` pixels of context."""
    from geoseg.prediction.refine import box_mean, refine

    if method == "box":  # the control: the same smoothing without the image (a flat guide), box of box
        def run(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            return box_mean(box_mean(p, params["radius"]), params["radius"])
    else:
        def run(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            return refine(p, g, method=method, **params)
    _, _, h, w = probs.shape
    out = torch.empty_like(probs)
    for r, c, hh, ww in windows(h, w, WINDOW):
        r0, c0 = max(0, r - halo), max(0, c - halo)
        r1, c1 = min(h, r + hh + halo), min(w, c + ww + halo)
        piece = run(probs[..., r0:r1, c0:c1], guide[..., r0:r1, c0:c1])
        out[..., r:r + hh, c:c + ww] = piece[..., r - r0:r - r0 + hh, c - c0:c - c0 + ww]
    return out


def label(method: str, params: dict[str, Any]) -> str:
    if method == "guided":
        return f"guided r={params['radius']} eps={params['eps']:g}"
    if method == "box":
        return f"control: box of box r={params['radius']} (no image)"
    return f"crf r={params['radius']}/{params['step']} th_xy={params['theta_xy']:g} th_rgb={params['theta_rgb']:g} " \
           f"w={params['weight']:g} it={params['iterations']}"


def halo_for(method: str, params: dict[str, Any]) -> int:
    # The guided filter reaches 2r (two box passes); mean field reaches radius per iteration.
    return params["radius"] * params["iterations"] if method == "crf" else 2 * params["radius"] + 2


def run_fold(place: str, runs: Path, crf: bool) -> dict[str, Any]:
    import rasterio
    from building_lopo import held_out_scenes
    from rasterio.enums import Resampling

    import geoseg

    model = geoseg.load_model(runs / f"{place}-pretrained" / "model.safetensors")
    model.network.eval()
    resolution = model.card.resolution
    grids: dict[str, dict[str, Any]] = {"model": {}, "native": {}}
    for name, image_path, _ in held_out_scenes(place):
        truth_file = truth_path(Path(image_path))
        if truth_file is None:  # the demo crop: part of a scene already counted, with vector truth only
            print(f"  {name}: no raster truth, skipped", flush=True)
            continue
        with rasterio.open(image_path) as ds, rasterio.open(truth_file) as ts:
            h, w = ds.height, ds.width
            factor = resolution / abs(ds.res[0])
            mh, mw = max(1, math.ceil(h / factor)), max(1, math.ceil(w / factor))
            image = ds.read([1, 2, 3])
            small = ds.read([1, 2, 3], out_shape=(3, mh, mw), resampling=Resampling.average)
            truth = ts.read(1)
            truth_small = ts.read(1, out_shape=(mh, mw), resampling=Resampling.mode)
        started = time.perf_counter()
        probs = model_probs(model, small)
        network_s = time.perf_counter() - started
        print(f"  {name}: {w}x{h} px native, {mw}x{mh} px at {resolution:g} m, network {network_s:.1f} s",
              flush=True)
        cases = {
            "model": (probs, torch.from_numpy(small).float()[None] / 255, truth_small, MODEL_SETTINGS),
            "native": (F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False),
                       torch.from_numpy(image).float()[None] / 255, truth, NATIVE_SETTINGS),
        }
        for grid, (p, guide, t, settings) in cases.items():
            row = grids[grid]
            base = row.setdefault("baseline", {"counts": np.zeros(3, np.int64), "seconds": 0.0, "mpix": 0.0})
            base["counts"] += counts(p.argmax(dim=1)[0].numpy(), t)
            mpix = p.shape[-1] * p.shape[-2] / 1e6
            for method, params in settings:
                if method == "crf" and not crf:
                    continue
                key = label(method, params)
                entry = row.setdefault(key, {"counts": np.zeros(3, np.int64), "seconds": 0.0, "mpix": 0.0})
                started = time.perf_counter()
                refined = refine_windowed(p, guide, method, params, halo_for(method, params))
                entry["seconds"] += time.perf_counter() - started
                entry["mpix"] += mpix
                entry["counts"] += counts(refined.argmax(dim=1)[0].numpy(), t)
            del p, guide
    return grids


def show(key: str, entry: dict[str, Any], base: float) -> None:
    tp, fp, fn = (int(v) for v in entry["counts"])
    quality = f"IoU {iou(entry['counts']):.4f}"
    quality += "" if key == "baseline" else f" ({iou(entry['counts']) - base:+.4f})"
    quality += f"  P {tp / max(1, tp + fp):.3f} R {tp / max(1, tp + fn):.3f}"
    cost = "" if key == "baseline" else f"  {1000 * entry['seconds'] / max(entry['mpix'], 1e-9):6.0f} ms/MPix"
    print(f"    {key:50s} {quality}{cost}")


def timing(settings: list[tuple[str, dict[str, Any]]], repeats: int = 5) -> None:
    """Cost on one 1024 x 1024 window (2 classes, RGB guide): median and best of ``repeats`` runs."""
    from geoseg.prediction.refine import refine

    g = torch.Generator().manual_seed(0)
    probs = torch.randn(1, 2, WINDOW, WINDOW, generator=g).softmax(dim=1)
    image = torch.rand(1, 3, WINDOW, WINDOW, generator=g)
    mpix = WINDOW * WINDOW / 1e6
    print(f"cost on one {WINDOW}x{WINDOW} window ({repeats} runs; ms per MPix, median / best):")
    for method, params in settings:
        if method == "box":
            continue
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            refine(probs, image, method=method, **params)
            runs.append(1000 * (time.perf_counter() - started) / mpix)
        print(f"    {label(method, params):50s} {float(np.median(runs)):6.0f} / {min(runs):6.0f} ms/MPix")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold", action="append", choices=["kampala", "philippines"], default=None)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "lopo_v2")
    parser.add_argument("--no-crf", action="store_true", help="skip the (slower) local mean-field CRF")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs per setting on one window")
    args = parser.parse_args()
    folds = args.fold or ["kampala", "philippines"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)", flush=True)
    pooled: dict[str, dict[str, dict[str, Any]]] = {}
    for place in folds:
        print(f"fold {place} (model trained without it):", flush=True)
        grids = run_fold(place, args.runs, not args.no_crf)
        for grid, rows in grids.items():
            print(f"  {grid} grid: building IoU (tp/fp/fn pooled over the place's scenes)")
            base = iou(rows["baseline"]["counts"])
            for key, entry in rows.items():
                show(key, entry, base)
                total = pooled.setdefault(grid, {}).setdefault(
                    key, {"counts": np.zeros(3, np.int64), "seconds": 0.0, "mpix": 0.0})
                total["counts"] += entry["counts"]
                total["seconds"] += entry["seconds"]
                total["mpix"] += entry["mpix"]
    print(f"all folds ({', '.join(folds)}), pixels pooled:")
    for grid, rows in pooled.items():
        base = iou(rows["baseline"]["counts"])
        print(f"  {grid} grid:")
        for key, entry in rows.items():
            show(key, entry, base)
    timing([s for s in NATIVE_SETTINGS if args.no_crf is False or s[0] != "crf"], args.repeats)


if __name__ == "__main__":
    main()
