"""One scene's work, run as a Dask task: predict, vectorize, describe, each output landing atomically.

The task receives paths (in a :class:`SceneJob`) and runs inside a worker.  It
does not start a cluster of its own: it takes the worker's client with
``distributed.worker_client()`` (which secedes from the worker's thread pool),
so the tile tasks of :func:`geoseg.predict` run on the same cluster as the
scene tasks, whether that is a local cluster or a remote scheduler.

Every output is written under a temporary name (``*.geoseg-tmp-*``) in the
scene's folder, checked (it opens, has the expected shape, CRS and feature
count, its last block reads), then renamed into place; ``item.json`` comes
last.  A task killed at any point leaves at most temporary files (removed by
the next run) and complete outputs of an unfinished scene (rewritten by the
next run, which finds the scene not ``done`` in the manifest).  Outputs
depend only on the scene's key, so a rerun writes the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, temporary_sibling
from ..classes import part_sidecar_path
from ..errors import GeoSegError
from ..io import rasters as _rasters  # noqa: F401  (imports rasterio once, before tasks run in worker threads)
from ..prediction.style import move_sidecars, qml_path
from .keys import file_sha256
from .layout import CONFIDENCE, ITEM, LANDCOVER, vector_name
from .manifest import OutputRecord
from .stac import COG_TYPE, GPKG_TYPE, QML_TYPE, Asset, collection_id_for, item_bytes, scene_item, stac_datetime

__all__ = ["SceneJob", "SceneOutcome", "classify_error", "one_line", "process_scene"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs to process one scene: plain, picklable values."""

    scene_id: str
    source: str
    root: str
    out_dir: str
    model: str
    model_label: str
    predict: Mapping[str, Any]
    vectorize: Mapping[str, Any] | None
    key: str
    key_parts: Mapping[str, str]
    steps: Mapping[str, Any]
    derived_from: str
    when: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SceneOutcome:
    """Outputs with checksums and step timings, or ``error`` = ``(kind, reason)`` if the scene failed."""

    outputs: dict[str, OutputRecord]
    timings: dict[str, float]
    features: dict[str, int] = field(default_factory=dict)
    error: tuple[str, str] | None = None


def process_scene(job: SceneJob, client: Any = None) -> SceneOutcome:
    """Run one scene; inside a Dask worker the nested work goes to the worker's own client.

    An error raised by the scene's own work comes back as ``SceneOutcome.error``
    (``(kind, one-line reason)``) rather than as a Dask error: the type that
    tells a permanent failure from one worth retrying is judged here, where the
    exception is whole (Dask would pickle it with its causes, and rasterio's GDAL
    errors among them do not survive that).  Lost workers and cancelled tasks
    still reach the client as Dask errors.
    """
    started = time.perf_counter()
    before = _snapshot(Path(job.out_dir))
    try:
        if client is not None:
            return _process(job, client)
        from distributed import worker_client

        with worker_client() as own:
            return _process(job, own)
    except BaseException as exc:
        _undo(Path(job.out_dir), before)  # a failed scene leaves nothing of this attempt under the output root
        if not isinstance(exc, Exception):
            raise
        log.debug("%s failed", job.scene_id, exc_info=True)
        return SceneOutcome({}, {"total": time.perf_counter() - started}, error=(classify_error(exc), one_line(exc)))


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]] | None:
    """``{name: (inode, size, mtime)}`` of the files in ``folder``; ``None`` if it does not exist."""
    if not folder.is_dir():
        return None
    out = {}
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            st = path.stat()
            out[path.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _undo(folder: Path, before: dict[str, tuple[int, int, int]] | None) -> None:
    """Remove what appeared or changed in ``folder`` since ``before``, and the folder if this attempt made it."""
    if not folder.is_dir():
        return
    known = before or {}
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            st = path.stat()
            if path.is_file() and known.get(path.name) != (st.st_ino, st.st_size, st.st_mtime_ns):
                path.unlink()
    if before is None:
        with contextlib.suppress(OSError):
            folder.rmdir()


def classify_error(exc: BaseException) -> str:
    """``transient`` (worth retrying: I/O errors, lost workers, timeouts, cancelled tasks) or ``permanent``."""
    import concurrent.futures

    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    if isinstance(exc, GeoSegError):
        return "permanent"
    if isinstance(exc, (KilledWorker, CommClosedError, TimeoutError, OSError, concurrent.futures.CancelledError)):
        return "transient"
    return "permanent"


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 500 characters."""
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:500]


def _process(job: SceneJob, client: Any) -> SceneOutcome:
    from ..io.rasters import inspect_scene, open_raster
    from ..model.file import read_card
    from ..prediction.api import check_scene_fits_card, predict

    started = time.perf_counter()
    info = inspect_scene(job.source)
    card = read_card(job.model)
    check_scene_fits_card(info, card)  # before anything is written for the scene
    root, out_dir = Path(job.root), Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    assets: dict[str, tuple[Path, Asset]] = {}
    features: dict[str, int] = {}

    landcover = out_dir / LANDCOVER
    confidence = out_dir / CONFIDENCE if job.predict.get("confidence", True) else None
    # A model with part classes also writes landcover.parts.tif, which vectorize splits touching buildings with.
    parts = part_sidecar_path(landcover) if card.parts else None
    finals = [landcover] + ([confidence] if confidence else []) + ([parts] if parts else [])
    staged = [temporary_sibling(p) for p in finals]
    try:
        options = {k: v for k, v in job.predict.items() if k != "confidence"}
        predict(job.source, job.model, staged[0], confidence=staged[1] if confidence else None,
                parts=staged[-1] if parts else False, client=client, **options)
        for tmp, final in zip(staged, finals, strict=True):
            _check_raster(tmp, info)
            move_sidecars(tmp, final)  # the style first: a raster under its final name has its style
            os.replace(tmp, final)
    finally:
        _remove(staged + [qml_path(p) for p in staged])
    timings["predict"] = time.perf_counter() - started
    assets["landcover"] = (landcover, _asset(landcover, COG_TYPE, "Land-cover class ids", ("data",)))
    if qml_path(landcover).is_file():
        style = qml_path(landcover)
        assets["landcover_style"] = (style, _asset(style, QML_TYPE, f"QGIS layer style of {LANDCOVER}", ("metadata",)))
    if confidence:
        title = "Confidence: max class probability x 255"
        assets["confidence"] = (confidence, _asset(confidence, COG_TYPE, title, ("data",)))
    if parts:
        title = "Building parts (body, border, contact) for splitting touching buildings"
        assets["parts"] = (parts, _asset(parts, COG_TYPE, title, ("data",)))

    if job.vectorize is not None:
        t0 = time.perf_counter()
        features = _vectorize(job, card, landcover, confidence, client, assets)
        timings["vectorize"] = time.perf_counter() - t0

    with open_raster(job.source) as ds:
        tags = ds.tags()
    when = dict(job.when) if job.when else stac_datetime(tags, os.stat(job.source).st_mtime_ns)
    item = scene_item(
        scene_id=job.scene_id, crs_wkt=info.crs_wkt, transform=info.transform, width=info.width, height=info.height,
        when=when, assets={k: a for k, (_, a) in assets.items()}, derived_from=job.derived_from,
        classes=card.display_classes, folder=out_dir, collection_id=collection_id_for(root),
        properties={
            "geoseg:version": job.key_parts["geoseg"], "geoseg:key": job.key, "geoseg:model": job.model_label,
            "geoseg:model_sha256": job.key_parts["model"], "geoseg:input_digest": job.key_parts["input"],
            "geoseg:steps": dict(job.steps), "geoseg:features": features,
        },
    )
    item_path = out_dir / ITEM
    with atomic_path(item_path, overwrite=True) as tmp:
        tmp.write_bytes(item_bytes(item))
    timings["total"] = time.perf_counter() - started
    outputs = {key: _record(path, root, asset.sha256) for key, (path, asset) in assets.items()}
    outputs["item"] = _record(item_path, root, file_sha256(item_path))
    return SceneOutcome(outputs, timings, features)


def _vectorize(job: SceneJob, card: Any, landcover: Path, confidence: Path | None, client: Any,
               assets: dict[str, tuple[Path, Asset]]) -> dict[str, int]:
    """One GeoPackage per configured class, each staged, checked and renamed."""
    from ..classes import resolve_classes
    from ..vectorization.api import vectorize

    options = dict(job.vectorize or {})
    wanted = options.pop("classes")
    features: dict[str, int] = {}
    for cls in resolve_classes(card.classes, [str(c) for c in wanted]):
        final = landcover.parent / vector_name(cls.name)
        tmp = temporary_sibling(final)
        try:
            result = vectorize(landcover, tmp, confidence=confidence, classes=[cls.name], scene_id=job.scene_id,
                               client=client, **options)
            count = sum(result.features.values())
            _check_vector(tmp, count)
            os.replace(tmp, final)
        finally:
            _remove([tmp])
        features[cls.name] = count
        assets[f"{final.stem}_polygons"] = (final, _asset(final, GPKG_TYPE, f"{cls.name} polygons", ("data",)))
    return features


def _asset(path: Path, media_type: str, title: str, roles: Sequence[str]) -> Asset:
    return Asset(f"./{path.name}", media_type, title, tuple(roles), file_sha256(path), path.stat().st_size)


def _record(path: Path, root: Path, sha256: str) -> OutputRecord:
    st = path.stat()
    return OutputRecord(path.relative_to(root).as_posix(), sha256, st.st_size, st.st_mtime_ns)


def _check_raster(path: Path, info: Any) -> None:
    """The written raster opens, matches the scene's grid, and its last block reads."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as ds:
        got = (ds.width, ds.height, ds.count, ds.dtypes[0])
        want = (info.width, info.height, 1, "uint8")
        if got != want or ds.crs != info.crs:
            raise RuntimeError(f"{path.name} was written as {got} {ds.crs}, expected {want} {info.crs}")
        bh, bw = ds.block_shapes[0]
        row, col = (ds.height - 1) // bh * bh, (ds.width - 1) // bw * bw
        ds.read(1, window=Window(col, row, ds.width - col, ds.height - row))


def _check_vector(path: Path, expected: int) -> None:
    """The written GeoPackage opens and holds the features the step reported."""
    import pyogrio

    count = sum(pyogrio.read_info(path, layer=name)["features"] for name, _ in pyogrio.list_layers(path))
    if count != expected:
        raise RuntimeError(f"{path.name} holds {count} features, expected {expected}")


def _remove(paths: Sequence[Path | None]) -> None:
    for p in paths:
        if p is not None:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
