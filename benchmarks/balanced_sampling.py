"""Class-balanced against uniform tile sampling on a small class: buildings in ../shared/data/massachusetts.

    python benchmarks/balanced_sampling.py [--epochs 6] [--samples 160] [--split 0.6] [--keep DIR]

The Massachusetts scene (1 m, 1182 x 901 px, buildings 5.7 % of pixels) is cut
at ``--split`` of its width: the same network (configs/train/massachusetts_buildings.yaml)
is trained with the same budget, seed and validation strips on the western
part twice, once per sampler, and both models predict the eastern part, which
neither saw.  Building IoU, precision, recall and F1 are computed from the
predictions and the mask with numpy.  Prints both, plus training wall time per
epoch (training + validation) on this machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GEOSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
SCENE = DATA / "massachusetts" / "mass_22978945_15_image.tif"
MASK = DATA / "massachusetts" / "mass_22978945_15_mask.tif"
CONFIG = REPO / "configs" / "train" / "massachusetts_buildings.yaml"


def crop(source: Path, out: Path, col0: int, col1: int) -> Path:
    """Columns ``col0:col1`` of ``source`` as a GeoTIFF on the same grid."""
    with rasterio.open(source) as src:
        window = Window(col0, 0, col1 - col0, src.height)
        profile = src.profile | {"width": col1 - col0, "transform": window_transform(window, src.transform)}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return out


def building_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pixel scores of class 1 where the truth is known (mask 0/1; 255 = image nodata)."""
    known = truth != 255
    p, t = pred[known] == 1, truth[known] == 1
    tp, fp, fn = float(np.sum(p & t)), float(np.sum(p & ~t)), float(np.sum(~p & t))
    return {
        "iou": tp / max(tp + fp + fn, 1.0),
        "precision": tp / max(tp + fp, 1.0),
        "recall": tp / max(tp + fn, 1.0),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1.0),
        "predicted_share": float(p.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=160, help="tiles drawn per epoch")
    parser.add_argument("--split", type=float, default=0.6, help="share of the width used for training (west)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep models and reports in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoseg-balanced-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        run(args, folder)


def quiet_lightning() -> None:
    """Lightning adds an INFO console handler on import; keep only warnings."""
    import lightning  # noqa: F401

    logging.basicConfig(level=logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "distributed", "dask"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.WARNING)
        logger.propagate = True


def run(args: argparse.Namespace, folder: Path) -> None:
    import warnings

    import geoseg

    quiet_lightning()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    with rasterio.open(SCENE) as src:
        width = src.width
    split = round(width * args.split)
    west, west_mask = crop(SCENE, folder / "west.tif", 0, split), crop(MASK, folder / "west_mask.tif", 0, split)
    east, east_mask = crop(SCENE, folder / "east.tif", split, width), crop(MASK, folder / "east_mask.tif", split, width)
    with rasterio.open(east_mask) as ds:
        truth = ds.read(1)
    with rasterio.open(west_mask) as ds:
        west_share = float((ds.read(1) == 1).mean())
    print(f"Massachusetts {width} px wide: train on columns 0-{split} (buildings {west_share:.1%}), "
          f"test on {split}-{width} (buildings {(truth == 1).mean():.1%}); {os.cpu_count()} CPU cores")
    print(f"budget per run: {args.epochs} epochs x {args.samples} tiles, seed {args.seed}")

    rows = {}
    for kind in ("uniform", "balanced"):
        report_dir = folder / kind
        report_dir.mkdir(exist_ok=True)
        out = report_dir / "model.safetensors"
        overrides = [
            f"scenes=[{{image: {west}, labels: {west_mask}}}]",
            f"sampler.kind={kind}",
            f"sampler.samples_per_epoch={args.samples}",
            f"trainer.epochs={args.epochs}",
            f"trainer.patience={args.epochs}",
            f"seed={args.seed}",
            "cluster.workers=1",
        ]
        started = time.perf_counter()
        result = geoseg.train(CONFIG, out, overrides=overrides, overwrite=True)
        train_seconds = time.perf_counter() - started
        prediction = geoseg.predict(east, out, report_dir / "east_pred.tif", overlap=32, workers=1, overwrite=True)
        with rasterio.open(prediction.output) as ds:
            pred = ds.read(1)
        report = json.loads(result.report.read_text())
        rows[kind] = {
            **building_scores(pred, truth),
            "sampled_building_share": report["class_share"]["sampled"]["building"],
            "val_miou_best": result.best_miou,
            "best_epoch": result.best_epoch,
            "seconds_per_epoch": report["seconds_per_epoch"],
            "train_seconds": train_seconds,
        }
        print(f"{kind}: trained in {train_seconds:.0f} s ({report['seconds_per_epoch']:.1f} s/epoch), "
              f"best epoch {result.best_epoch}", flush=True)

    print()
    print(f"{'sampler':<10}{'sampled bldg':>13}{'IoU':>8}{'precision':>11}{'recall':>8}{'F1':>8}"
          f"{'pred bldg':>11}{'s/epoch':>9}")
    for kind, r in rows.items():
        print(f"{kind:<10}{r['sampled_building_share']:>13.1%}{r['iou']:>8.3f}{r['precision']:>11.3f}{r['recall']:>8.3f}"
              f"{r['f1']:>8.3f}{r['predicted_share']:>11.1%}{r['seconds_per_epoch']:>9.1f}")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
