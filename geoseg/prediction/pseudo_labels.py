"""Pseudo-labels: a model's confident predictions on unlabelled scenes, written as training label rasters.

The loop it serves: train on labelled scenes, pseudo-label unlabelled ones,
retrain on both.  Each scene goes through :func:`~geoseg.prediction.api.predict`
(class ids and confidence, to a temporary folder), then one label raster is
written per scene, block by block:

* the class id where the confidence (the blended max probability, stored in
  steps of 1/255) is at least ``min_confidence``;
* the *ignore id* elsewhere: the model card's ``ignore_index``, or
  :data:`~geoseg.classes.NODATA` (255, "no label") when it has none;
* :data:`~geoseg.classes.NODATA` (the raster's nodata) where the scene is invalid.

Models with part classes (border, contact) are written with the parts folded
into their object class, as predict's land-cover map shows them: a training
config lists display classes only (``parts`` adds the part classes itself), and
part targets are computed from label polygons, so raster labels train a model
without ``parts``.

The label rasters sit on the scene's grid (same size, CRS and transform), so a
training config takes them as they are (``scenes: - {image: x.tif, labels:
labels/x.tif}``); ``pseudo_labels.yaml`` beside them lists those pairs, the
classes and the ignore id.  Everything is written under temporary names and
renamed at the end: a failure leaves no output at all.

This module lives in ``prediction/`` (it runs predict and writes rasters of
class ids); it does not import ``training/``, which reads its output as any
other label raster (:mod:`geoseg.training.labels`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import TMP_MARKER, check_writable, output_errors, temporary_sibling, usual_permissions
from ..classes import CLASSES_TAG, NODATA, ClassInfo, classes_to_json
from ..errors import InputError, OutputExistsError, UsageError
from ..io.remote import is_remote
from ..tiling import block_windows
from .options import PredictOptions

if TYPE_CHECKING:
    from ..model.card import ModelCard
    from ..model.network import Model

__all__ = [
    "IGNORE_TAG",
    "PSEUDO_TAG",
    "SNIPPET_NAME",
    "PseudoLabelResult",
    "PseudoLabelRun",
    "confidence_cutoff",
    "ignore_id_for",
    "pseudo_label",
    "pseudo_label_array",
]

log = logging.getLogger(__name__)

#: Dataset tag of a pseudo-label raster: the label id of pixels below the threshold.
IGNORE_TAG = "GEOSEG_IGNORE_ID"
#: Dataset tag of a pseudo-label raster: JSON with the model, the threshold and the scene.
PSEUDO_TAG = "GEOSEG_PSEUDO_LABELS"
#: The training-config snippet written beside the label rasters.
SNIPPET_NAME = "pseudo_labels.yaml"
#: Label rasters are written in blocks of at most this many pixels a side.
BLOCK = 1024


@dataclass(frozen=True)
class PseudoLabelResult:
    """One scene's label raster and how much of it was labelled."""

    scene: Path
    labels: Path
    labelled: int  #: pixels given a class (confidence >= threshold)
    ignored: int  #: valid pixels below the threshold (the ignore id)
    invalid: int  #: pixels the scene has no data for (nodata 255)

    @property
    def labelled_share(self) -> float:
        """Share of the scene's valid pixels that got a class."""
        valid = self.labelled + self.ignored
        return self.labelled / valid if valid else 0.0


@dataclass(frozen=True)
class PseudoLabelRun:
    """What :func:`pseudo_label` wrote."""

    results: tuple[PseudoLabelResult, ...]
    ignore_id: int
    min_confidence: float
    classes: tuple[ClassInfo, ...]
    snippet: Path


def confidence_cutoff(min_confidence: float) -> int:
    """The smallest stored confidence (0-255, steps of 1/255) that is at least ``min_confidence`` (0 < c <= 1)."""
    if not (isinstance(min_confidence, (int, float)) and 0 < min_confidence <= 1):
        raise UsageError(f"min confidence must be in (0, 1], got {min_confidence!r}; e.g. --min-confidence 0.9")
    return max(1, math.ceil(min_confidence * 255 - 1e-6))


def ignore_id_for(card: ModelCard) -> int:
    """The label id of unsure pixels: the card's ``ignore_index``, else NODATA (255, 'no label')."""
    ignore = NODATA if card.ignore_index is None else int(card.ignore_index)
    if ignore in {c.id for c in card.display_classes}:
        raise InputError(
            f"the model's ignore_index {ignore} is also one of its class ids; pseudo-labels could not tell "
            "unsure pixels from that class. Fix the model card's ignore_index"
        )
    return ignore


def pseudo_label_array(class_ids: np.ndarray, confidence: np.ndarray, *, cutoff: int, ignore_id: int) -> np.ndarray:
    """Label ids from predict's class ids (NODATA: invalid) and confidence (0-255): the class where
    ``confidence >= cutoff``, ``ignore_id`` at other valid pixels, NODATA at invalid ones.  Pure."""
    ids = np.asarray(class_ids, dtype=np.uint8)
    sure = np.asarray(confidence) >= cutoff
    return np.where(ids == NODATA, np.uint8(NODATA), np.where(sure, ids, np.uint8(ignore_id))).astype(np.uint8)


def _local(scene: str | os.PathLike[str]) -> str:
    if is_remote(scene):
        raise UsageError(
            f"{os.fspath(scene)!r} is remote; training reads local scenes only, so download it first "
            "and pseudo-label the local copy"
        )
    return os.fspath(scene)


def _check_outputs(scenes: Sequence[Path], out_dir: Path, *, overwrite: bool) -> tuple[list[Path], bool]:
    """Where each scene's labels go; refuse duplicate names, existing files (without overwrite), scenes as outputs."""
    if not scenes:
        raise UsageError("no scenes to pseudo-label; give at least one GeoTIFF")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {str(out_dir)!r} is a file; give a folder for the label rasters")
    targets: list[Path] = []
    seen: dict[str, Path] = {}
    for scene in scenes:
        stem = scene.stem
        if stem in seen:
            raise UsageError(
                f"scenes {str(seen[stem])!r} and {str(scene)!r} would both write {stem}.tif; rename one of them"
            )
        seen[stem] = scene
        targets.append(out_dir / f"{stem}.tif")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for target in [*targets, out_dir / SNIPPET_NAME]:
            check_writable(target, overwrite=overwrite, inputs=scenes)
    except BaseException:
        if created:
            out_dir.rmdir()
        raise
    return targets, created


def _load(model: Model | str | os.PathLike[str] | None) -> Model:
    if type(model).__name__ == "Model" and hasattr(model, "network") and hasattr(model, "card"):
        return model  # type: ignore[return-value]
    from ..model.network import load_model

    return load_model(model)  # type: ignore[arg-type]


def pseudo_label(
    scenes: Sequence[str | os.PathLike[str]],
    model: Model | str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    min_confidence: float,
    options: PredictOptions | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_scene: Callable[[PseudoLabelResult], None] | None = None,
) -> PseudoLabelRun:
    """Write ``out_dir/<scene stem>.tif`` for every scene: the model's class where its confidence is at least
    ``min_confidence``, the ignore id elsewhere; and ``out_dir/pseudo_labels.yaml``, the training-config lines.

    ``model`` is a :class:`geoseg.Model`, a model file, a shipped model's name
    or ``None`` (the default shipped model); it is loaded once for all scenes.
    ``options`` are :func:`geoseg.predict`'s (default: its defaults).  All outputs
    or none: they are renamed into place only when every scene is done.
    ``on_scene`` is called as each scene is finished (e.g. to report progress).
    """
    from ..io.rasters import inspect_scene
    from .api import check_scene_fits_card, predict

    cutoff = confidence_cutoff(min_confidence)
    options = options or PredictOptions()
    predict_kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    paths = [Path(_local(s)) for s in scenes]
    out_dir = Path(out_dir)
    net = _load(model)
    card = net.card
    for scene in paths:  # every scene readable and fit for the model before anything is written
        check_scene_fits_card(inspect_scene(scene), card)
    targets, created = _check_outputs(paths, out_dir, overwrite=overwrite)
    ignore = ignore_id_for(card)
    label = str(model) if isinstance(model, (str, os.PathLike)) else ("default" if model is None else "in memory")
    staged: list[tuple[Path, Path]] = []
    results: list[PseudoLabelResult] = []
    try:
        for scene, target in zip(paths, targets, strict=True):
            with tempfile.TemporaryDirectory(prefix=f"{TMP_MARKER}pseudo-", dir=out_dir) as tmp:
                ids, conf = Path(tmp) / "ids.tif", Path(tmp) / "confidence.tif"
                predict(scene, net, ids, confidence=conf, parts=False, **predict_kwargs, overwrite=True,
                        progress=progress)
                staging = temporary_sibling(target)
                staged.append((staging, target))
                tags = {
                    CLASSES_TAG: classes_to_json(card.display_classes),
                    IGNORE_TAG: str(ignore),
                    PSEUDO_TAG: json.dumps({"model": label, "min_confidence": min_confidence, "cutoff_255": cutoff,
                                            "scene": str(scene.resolve())}),
                }
                counts = _write_labels(ids, conf, staging, cutoff=cutoff, ignore_id=ignore, tags=tags,
                                       classes=card.display_classes)
            result = PseudoLabelResult(scene, target, *counts)
            log.info("%s: %.1f %% of the valid pixels labelled (confidence >= %g)", target, 100 * result.labelled_share,
                     min_confidence)
            results.append(result)
            if on_scene is not None:
                on_scene(result)
        snippet = out_dir / SNIPPET_NAME
        snippet_staging = temporary_sibling(snippet)
        staged.append((snippet_staging, snippet))
        with output_errors(snippet):
            snippet_staging.write_text(_snippet(results, card.display_classes, ignore, min_confidence, label))
        _commit(staged, overwrite=overwrite)
    except BaseException:
        for staging, _ in staged:
            with contextlib.suppress(OSError):
                staging.unlink()
        if created:  # a folder this run made: leave nothing behind (rmdir refuses a folder with files in it)
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    return PseudoLabelRun(tuple(results), ignore, min_confidence, tuple(card.display_classes), snippet)


def _commit(staged: list[tuple[Path, Path]], *, overwrite: bool) -> None:
    """Rename every staged output into place (after checking none appeared meanwhile without ``overwrite``)."""
    if not overwrite:
        for _, final in staged:
            if final.exists():
                raise OutputExistsError(f"{str(final)!r} appeared while writing; pass --overwrite to replace it")
    for staging, final in staged:
        usual_permissions(staging)
        os.replace(staging, final)


def _write_labels(
    ids_path: Path, conf_path: Path, out: Path, *, cutoff: int, ignore_id: int, tags: dict[str, str],
    classes: Sequence[ClassInfo],
) -> tuple[int, int, int]:
    """The label raster ``out`` from predict's outputs, block by block; ``(labelled, ignored, invalid)`` pixels."""
    import rasterio
    from rasterio.windows import Window

    from .write import class_colormap

    labelled = ignored = invalid = 0
    with output_errors(out), rasterio.open(ids_path) as ids_ds, rasterio.open(conf_path) as conf_ds:
        profile: dict[str, Any] = dict(
            driver="GTiff", width=ids_ds.width, height=ids_ds.height, count=1, dtype="uint8", crs=ids_ds.crs,
            transform=ids_ds.transform, nodata=NODATA, tiled=True, blockxsize=256, blockysize=256,
            compress="deflate", BIGTIFF="IF_SAFER",
        )
        with rasterio.open(out, "w", **profile) as dst:
            for w in block_windows(ids_ds.height, ids_ds.width, BLOCK):
                window = Window(w.col_off, w.row_off, w.width, w.height)
                ids = ids_ds.read(1, window=window)
                labels = pseudo_label_array(ids, conf_ds.read(1, window=window), cutoff=cutoff, ignore_id=ignore_id)
                dst.write(labels, 1, window=window)
                bad = int((ids == NODATA).sum())
                unsure = int((labels == ignore_id).sum()) - (bad if ignore_id == NODATA else 0)
                invalid += bad
                ignored += unsure
                labelled += labels.size - bad - unsure
            colours = class_colormap(classes)
            if ignore_id != NODATA:
                colours[ignore_id] = (128, 128, 128)
            dst.write_colormap(1, colours)
            dst.update_tags(**tags)
            dst.set_band_description(1, "pseudo-label id")
    return labelled, ignored, invalid


def _snippet(results: Sequence[PseudoLabelResult], classes: Sequence[ClassInfo], ignore_id: int,
             min_confidence: float, model: str) -> str:
    """The training-config lines for the pseudo-labelled scenes (a valid minimal config by itself)."""
    lines = [
        f"# Pseudo-labels written by geoseg pseudo-label (model {model}, min confidence {min_confidence:g}).",
        "# Paste the scenes into a training config (beside the labelled ones); the classes must match its classes.",
    ]
    if ignore_id == NODATA:
        lines.append(f"# Unsure pixels are {NODATA} ('no label'), which training always ignores: no ignore_id needed.")
    else:
        lines.append(f"# Unsure pixels are {ignore_id}: the config needs ignore_id: {ignore_id}.")
        lines.append(f"ignore_id: {ignore_id}")
    lines.append("# Raster labels cannot be used with a 'parts' section (part targets come from label polygons).")
    lines.append("classes:")
    lines += [f"  - {{id: {c.id}, name: {json.dumps(c.name)}, color: {list(c.color)}}}" for c in classes]
    lines.append("scenes:")
    for r in results:
        lines.append(f"  - image: {json.dumps(str(r.scene.resolve()))}")
        lines.append(f"    labels: {json.dumps(str(r.labels.resolve()))}")
        lines.append(f"    # {100 * r.labelled_share:.1f} % of the valid pixels labelled")
    return "\n".join(lines) + "\n"
