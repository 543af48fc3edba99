"""``geoseg.vectorize``: a class raster into polygons per class, block by block on Dask.

The client checks the inputs, cuts the raster into blocks and keeps a bounded
number of block tasks in flight (:mod:`geoseg.polygonize`).  Results are taken
in row-major block order: objects inside a block arrive finished and go
straight to the output; pieces of objects cut by seams are joined
(:mod:`geoseg.seam_merge`) and finished (:mod:`geoseg.polygons`) as soon as
all their neighbouring blocks are in.  Seams are resolved before any filter,
so an object is kept or dropped, simplified and measured exactly as if the
raster had been vectorised whole, and memory depends on the block size and
the open seam pieces, not on the scene size.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..atomic import atomic_path, check_writable
from ..classes import CLASSES_TAG, ClassInfo, resolve_classes
from ..cluster import ClusterSpec, bounded_map, dask_client
from ..errors import InputError, UsageError
from ..io.class_rasters import ClassRaster, inspect_class_raster
from ..io.grid import same_grid
from ..io.rasters import check_input_path, inspect_scene
from ..measure import MetricFrame, metric_frame
from ..tiling import PixelWindow, block_windows
from .finish import PolygonOptions, finish_polygons
from .options import DEFAULT_MIN_AREA, DEFAULT_MIN_SEED_AREA, VectorizeOptions
from .rectangles import rectangle_class_ids
from .seams import SeamMerger
from .split import split_job, split_objects
from .tasks import VectorizeJob, count_values, vectorize_block
from .write import FeatureWriter, output_driver

__all__ = ["vectorize", "VectorizeResult", "select_classes"]

log = logging.getLogger(__name__)

#: A class with this name is left out unless asked for.
BACKGROUND = "background"


class VectorizeResult(NamedTuple):
    """The output file, features written per class (every selected class, zeros included), and seconds taken."""

    output: Path
    features: dict[str, int]
    seconds: float


def _check_confidence(path: str | os.PathLike[str], raster: ClassRaster) -> str:
    info = inspect_scene(path)
    name = str(path)
    if info.count != 1 or info.dtype != "uint8":
        raise InputError(
            f"confidence raster {name!r} has {info.count} band(s) of {info.dtype}; expected one uint8 band "
            "(0-255, as written by geoseg predict --confidence)"
        )
    if not same_grid(info, raster):
        same_crs = info.crs == raster.crs
        raise InputError(
            f"confidence raster {name!r} is not on the class raster's grid "
            f"({info.width}x{info.height} px, origin {info.transform[2]:.6g},{info.transform[5]:.6g}, "
            f"pixel {info.transform[0]:.6g} "
            f"vs {raster.width}x{raster.height} px, origin {raster.transform[2]:.6g},{raster.transform[5]:.6g}, "
            f"pixel {raster.transform[0]:.6g}{'' if same_crs else ', different CRS'}); "
            "give the confidence written with this class raster"
        )
    return info.path


def _parse_wanted(classes: str | int | Iterable[str | int] | None) -> list[str | int] | None:
    if classes is None:
        return None
    if isinstance(classes, (str, int)):
        classes = [classes]
    wanted: list[str | int] = []
    for item in classes:
        if isinstance(item, str):
            wanted += [w.strip() for w in item.split(",") if w.strip()]
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            wanted.append(int(item))
        else:
            raise InputError(f"class {item!r} is neither a class name nor an id")
    if not wanted:
        raise InputError("no classes given; name at least one class (e.g. --classes building) or leave the option out")
    return wanted


def select_classes(
    raster: ClassRaster, classes: str | int | Iterable[str | int] | None, present: Sequence[int] | None = None
) -> tuple[ClassInfo, ...]:
    """The classes to vectorise, by name or id; default: every class in the table except "background".

    Without a class table, classes are ids (``3`` or ``class_3``), and the
    default is every id in ``present`` (the values found in the raster).
    """
    wanted = _parse_wanted(classes)
    nodata = int(raster.nodata) if raster.nodata is not None and float(raster.nodata).is_integer() else None
    if raster.scheme is not None:
        if wanted is None:
            picked = tuple(c for c in raster.scheme if c.name.lower() != BACKGROUND)
            if not picked:
                raise InputError(f"{raster.path!r}: the class table has only a background class; nothing to vectorise")
        else:
            picked = resolve_classes(raster.scheme, wanted)
    elif wanted is None:
        if present is None:
            raise ValueError("present must be given when the raster has no class table and no classes are named")
        picked = tuple(ClassInfo(int(i), f"class_{int(i)}") for i in present)
        if not picked:
            raise InputError(f"{raster.path!r} holds no valid class values; nothing to vectorise")
    else:
        ids: list[int] = []
        for w in wanted:
            text = str(w).strip().lower()
            text = text[len("class_"):] if text.startswith("class_") else text
            if not text.isdigit() or not 0 <= int(text) < 255:
                raise UsageError(
                    f"unknown class {w!r}: {raster.path!r} has no class table ({CLASSES_TAG} tag), "
                    "so give class ids 0-254 (e.g. --classes 1 or class_1)"
                )
            if int(text) not in ids:
                ids.append(int(text))
        picked = tuple(ClassInfo(i, f"class_{i}") for i in ids)
    for c in picked:
        if c.id == nodata:
            raise InputError(f"class {c.name!r} has id {c.id}, the raster's nodata value; it cannot be vectorised")
    return picked


def _classes_present(client: Any, raster: ClassRaster, blocks: Sequence[PixelWindow], progress: bool) -> list[int]:
    from tqdm.auto import tqdm

    counts = np.zeros(255, dtype=np.int64)
    calls = [(raster.path, w) for w in blocks]
    with (
        tqdm(total=len(blocks), unit="block", desc="finding classes", disable=not progress, leave=False) as bar,
        contextlib.closing(bounded_map(client, count_values, calls, ordered=True)) as results,
    ):
        for _, result in results:
            counts += result
            bar.update(1)
    return np.flatnonzero(counts).tolist()


def _vectorize_blocks(
    client: Any, job: VectorizeJob, blocks: Sequence[PixelWindow], writer: FeatureWriter, *, progress: bool, desc: str
) -> None:
    from tqdm.auto import tqdm

    rows = len({w.row_off for w in blocks})
    cols = len(blocks) // rows
    merger = SeamMerger(rows, cols, with_confidence=job.confidence is not None)
    calls = [(job, w, i) for i, w in enumerate(blocks)]
    with (
        tqdm(total=len(blocks), unit="block", desc=desc, disable=not progress, leave=False) as bar,
        contextlib.closing(bounded_map(client, vectorize_block, calls, ordered=True)) as results,
    ):
        for _, result in results:
            writer.write(result.features)
            merged = merger.add(result)
            if len(merged):
                whole = merged.geoms, merged.class_id, merged.stats
                if job.split is not None:  # objects joined across seams are split whole, like the others
                    whole = split_objects(job.split, *whole)
                writer.write(finish_polygons(*whole, transform=job.transform, frame=job.frame, options=job.options))
            bar.update(1)
            bar.set_postfix(open=merger.open_pieces, refresh=False)
    merger.check_complete()


def _check_number(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value}")
    return value


def vectorize(
    raster: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    confidence: str | os.PathLike[str] | None = None,
    classes: str | int | Iterable[str | int] | None = None,
    min_area: float | None = VectorizeOptions.min_area,
    simplify: float = VectorizeOptions.simplify,
    fill_holes: float = VectorizeOptions.fill_holes,
    regularize: bool = VectorizeOptions.regularize,
    rectangles: bool = VectorizeOptions.rectangles,
    rfc7946: bool = VectorizeOptions.rfc7946,
    block_size: int = VectorizeOptions.block_size,
    split: bool = VectorizeOptions.split,
    parts: str | os.PathLike[str] | None = None,
    min_seed_area: float | None = VectorizeOptions.min_seed_area,
    scene_id: str | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> VectorizeResult:
    """Vectorise the classes of a class raster into polygons, one layer per class.

    ``min_area`` and ``fill_holes`` are in square metres and ``simplify`` in
    metres whatever the raster's CRS (see :mod:`geoseg.measure`); 0 turns
    each off.  ``classes`` are names from the raster's class table or ids
    (a list, or one comma-separated string).  Runs on ``client`` if given,
    else on the Dask cluster at ``scheduler``, else on a local cluster of
    ``workers`` single-threaded processes (default: one per core).  The
    output format follows ``out``'s extension (.gpkg, .geojson, .fgb,
    .parquet) and is written atomically; GeoJSON in WGS 84 longitude/latitude
    (RFC 7946) unless ``rfc7946=False``, which keeps the raster's CRS.

    With ``split`` (the default), a class raster written by a model with part
    classes (building body, border, contact) has its touching buildings split
    apart, using the part sidecar ``parts`` (default: ``<stem>.parts.tif``
    beside the raster; see :mod:`geoseg.vectorization.split`); bodies smaller
    than ``min_seed_area`` square metres seed no building of their own.

    ``min_area`` and ``min_seed_area`` left at None take, for each class, the
    settings the model recommends (its card's ``vectorize``, written into the
    class raster by predict), else :data:`~.options.DEFAULT_MIN_AREA` and
    :data:`~.options.DEFAULT_MIN_SEED_AREA`; a number applies to every class.
    """
    started = time.perf_counter()
    driver = output_driver(out)
    options = PolygonOptions(
        min_area=DEFAULT_MIN_AREA if min_area is None else _check_number("min_area", min_area),
        simplify=_check_number("simplify", simplify),
        fill_holes=_check_number("fill_holes", fill_holes),
        regularize=bool(regularize),
    )
    if min_seed_area is not None:
        min_seed_area = _check_number("min_seed_area", min_seed_area)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size must be an integer >= 1, got {block_size!r}")
    out = check_writable(out, overwrite=overwrite, inputs=[raster, confidence])
    check_input_path(raster, "class raster")
    info = inspect_class_raster(raster)
    if out.resolve() == Path(info.path):
        raise InputError(f"--out {str(out)!r} is the input raster; choose another output file")
    conf_path = None
    if confidence is not None:
        check_input_path(confidence, "confidence raster")
        conf_path = _check_confidence(confidence, info)
        if out.resolve() == Path(conf_path):
            raise InputError(f"--out {str(out)!r} is the confidence raster; choose another output file")
    wanted = _parse_wanted(classes)
    if info.scheme is not None or wanted is not None:
        selected = select_classes(info, wanted)
    else:
        selected = None  # found on the cluster: the ids present in the raster
    frame = metric_frame(info.crs_wkt, info.bounds)
    options = replace(options, pixel_size=_pixel_size_m(info, frame))
    blocks = block_windows(info.height, info.width, int(block_size))
    source = scene_id if scene_id is not None else Path(raster).name
    log.info("%s: %dx%d px in %d blocks of %d px", info.path, info.width, info.height, len(blocks), block_size)

    # rasterio's polygonising holds the GIL: a local cluster gets one single-threaded worker process per core.
    spec = ClusterSpec(scheduler=scheduler, workers=workers or os.cpu_count() or 1, threads_per_worker=1)
    with dask_client(spec, client=client) as c:
        if selected is None:
            selected = select_classes(info, None, present=_classes_present(c, info, blocks, progress))
        recommended = {x.id: info.vectorize[x.name] for x in selected if x.name in info.vectorize}
        if min_area is None:
            options = replace(options, class_min_area=tuple(
                (i, r["min_area"]) for i, r in recommended.items() if "min_area" in r))
        if min_seed_area is None:  # the smallest any split class recommends (one seed size for the raster)
            min_seed_area = min((r["min_seed_area"] for r in recommended.values() if "min_seed_area" in r),
                                default=DEFAULT_MIN_SEED_AREA)
        options = replace(options, rectangles=rectangle_class_ids(selected) if rectangles else ())
        job = VectorizeJob(
            raster=info.path, class_ids=tuple(x.id for x in selected), height=info.height, width=info.width,
            transform=info.transform, frame=frame, options=options, confidence=conf_path,
            split=split_job(info, parts, split=split, classes=tuple(x.id for x in selected), confidence=conf_path,
                            min_seed_area=_check_number("min_seed_area", min_seed_area),
                            pixel_size=options.pixel_size),
        )
        with atomic_path(out, overwrite=overwrite) as tmp:
            writer = FeatureWriter(
                tmp, driver=driver, classes=[(x.id, x.name) for x in selected], crs_wkt=info.crs_wkt,
                source=str(source), with_confidence=conf_path is not None, layer_name=out.stem,
                shape_classes=options.rectangles, rfc7946=bool(rfc7946),
            )
            try:
                writer.open()
                _vectorize_blocks(c, job, blocks, writer, progress=progress, desc=Path(raster).name)
                counts = writer.close()
            finally:
                writer.discard()
    seconds = time.perf_counter() - started
    log.info("wrote %s: %s in %.1f s", out, counts, seconds)
    return VectorizeResult(out, counts, seconds)


def _pixel_size_m(info: ClassRaster, frame: MetricFrame) -> float:
    if info.resolution_m:
        return float(info.resolution_m)
    a, e = abs(info.transform[0]), abs(info.transform[4])
    return math.sqrt(a * e) * frame.length_scale
