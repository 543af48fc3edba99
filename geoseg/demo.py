"""The demo: the whole product on a bundled real scene, with nothing to download.

predict (shipped building model) -> vectorize buildings -> evaluate against the
bundled OpenStreetMap labels -> report.  One local Dask cluster serves every step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import check_writable
from .errors import OutputExistsError

__all__ = ["DEMO_SCENE", "DEMO_LABELS", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)

_DATA = Path(__file__).parent / "data"
#: A crop of the Kampala drone orthophoto (OpenAerialMap, CC BY 4.0) held out from training.
DEMO_SCENE = _DATA / "kampala_demo.tif"
#: Its building outlines (c) OpenStreetMap contributors, ODbL 1.0.
DEMO_LABELS = _DATA / "kampala_demo_buildings.gpkg"
ATTRIBUTION = _DATA / "ATTRIBUTION.md"


@dataclass(frozen=True)
class DemoResult:
    landcover: Path
    confidence: Path
    buildings: Path
    report: Path
    preview: Path
    metrics: dict[str, Any]
    #: Vehicle rectangles from the shipped vehicles model (None when it is not installed or another model was given).
    vehicles: Path | None = None


def run_demo(
    out: str | os.PathLike[str] = "geoseg-demo",
    *,
    model: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run predict, vectorize and evaluate on the bundled scene; write everything under ``out``."""
    from .cluster import ClusterSpec, dask_client
    from .evaluation.api import evaluate
    from .prediction.api import predict
    from .vectorization.api import vectorize

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{str(out)!r} already holds files; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "landcover": out / "landcover.tif",
        "confidence": out / "confidence.tif",
        "buildings": out / "buildings.gpkg",
    }
    for p in paths.values():
        check_writable(p, overwrite=True)
    say = step or (lambda text: log.info("%s", text))
    with dask_client(ClusterSpec()) as client:
        say("1/3 predict: segmenting the bundled Kampala scene")
        predict(DEMO_SCENE, model, paths["landcover"], confidence=paths["confidence"], resample=True,
                client=client, overwrite=True, progress=progress)
        say("2/3 vectorize: building outlines to a GeoPackage")
        vectorize(paths["landcover"], paths["buildings"], confidence=paths["confidence"], classes=["building"],
                  scene_id=DEMO_SCENE.stem, client=client, overwrite=True, progress=progress)  # the model's settings
        vehicles = _vehicles(out, client, say, progress) if model is None else None
    say("3/3 evaluate: against the OpenStreetMap building outlines")
    report = out / "report"
    metrics = evaluate(paths["landcover"], DEMO_LABELS, report, pred_vectors=paths["buildings"], image=DEMO_SCENE,
                       overwrite=True, progress=progress)
    return DemoResult(
        landcover=paths["landcover"],
        confidence=paths["confidence"],
        buildings=paths["buildings"],
        report=report / "report.html",
        preview=report / "preview_errors.png",
        metrics=metrics,
        vehicles=vehicles,
    )


def _vehicles(out: Path, client: Any, say: Callable[[str], None], progress: bool) -> Path | None:
    """Vehicles on the demo scene with the shipped vehicles model: one oriented rectangle per vehicle.

    The scene has no vehicle labels, so vehicles are shown, not scored (their figures are in the model's card).
    """
    from .model.file import SHIPPED_MODELS
    from .prediction.api import predict
    from .vectorization.api import vectorize

    if not SHIPPED_MODELS["vehicles"].exists():
        return None
    say("+ vehicles: the shipped vehicles model, one rectangle per vehicle to a GeoPackage (shown, not scored)")
    landcover, confidence = out / "vehicles_landcover.tif", out / "vehicles_confidence.tif"
    vehicles = out / "vehicles.gpkg"
    predict(DEMO_SCENE, "vehicles", landcover, confidence=confidence, resample=True, client=client, overwrite=True,
            progress=progress)
    vectorize(landcover, vehicles, confidence=confidence, classes=["vehicle"], scene_id=DEMO_SCENE.stem,
              client=client, overwrite=True, progress=progress)
    return vehicles
