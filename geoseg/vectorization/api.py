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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..atomic import atomic_path, check_writable
from ..classes import CLASSES_TAG, ClassInfo, classes_from_json, resolve_classes
from ..cluster import ClusterSpec, dask_client
from ..errors import InputError
from ..io.rasters import check_input_path, inspect_scene, open_raster
from ..measure import MetricFrame, metric_frame
from ..tiling import PixelWindow, block_windows
from .finish import PolygonOptions, finish_polygons
from .seams import SeamMerger
from .tasks import VectorizeJob, count_values, vectorize_block
from .write import FeatureWriter, output_driver

__all__ = ["vectorize", "VectorizeResult", "ClassRaster", "inspect_class_raster", "select_classes"]

log = logging.getLogger(__name__)

#: A class with this name is left out unless asked for.
BACKGROUND = "background"


class VectorizeResult(NamedTuple):
    """The output file, features written per class (every selected class, zeros included), and seconds taken."""

    output: Path
    features: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class ClassRaster:
    """A checked single-band class raster."""

    path: str
    width: int
    height: int
    dtype: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    nodata: float | None
    resolution_m: float | None
    #: The class table from the GEOSEG_CLASSES tag, or None when the raster has none.
    scheme: tuple[ClassInfo, ...] | None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        return (c, f + e * self.height, c + a * self.width, f)


def inspect_class_raster(path: str | os.PathLike[str]) -> ClassRaster:
    """Check that ``path`` is a georeferenced single-band integer class raster and read its class table."""
    info = inspect_scene(path)
    name = str(path)
    if info.count != 1:
        raise InputError(
            f"{name!r} has {info.count} bands; a class raster has one band of class ids "
            "(the output of geoseg predict)"
        )
    if not np.issubdtype(np.dtype(info.dtype), np.integer):
        raise InputError(
            f"{name!r} holds {info.dtype} values; a class raster holds integer class ids "
            "(uint8, as written by geoseg predict)"
        )
    with open_raster(path) as ds:
        tag = ds.tags().get(CLASSES_TAG)
    scheme = None
    if tag:
        try:
            scheme = classes_from_json(tag)
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{name!r}: the {CLASSES_TAG} tag is not a valid class table ({exc}); fix or remove the tag"
            ) from None
    return ClassRaster(
        path=info.path, width=info.width, height=info.height, dtype=info.dtype, crs_wkt=info.crs_wkt,
        transform=info.transform, nodata=info.nodata, resolution_m=info.resolution_m, scheme=scheme,
    )


def _check_confidence(path: str | os.PathLike[str], raster: ClassRaster) -> str:
    info = inspect_scene(path)
    name = str(path)
    if info.count != 1 or info.dtype != "uint8":
        raise InputError(
            f"confidence raster {name!r} has {info.count} band(s) of {info.dtype}; expected one uint8 band "
            "(0-255, as written by geoseg predict --confidence)"
        )
    from rasterio.crs import CRS

    same_crs = CRS.from_wkt(info.crs_wkt) == CRS.from_wkt(raster.crs_wkt)
    tol = 1e-6 * max(abs(raster.transform[0]), abs(raster.transform[4]))
    same_transform = all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=tol) for a, b in zip(info.transform, raster.transform)
    )
    if (info.width, info.height) != (raster.width, raster.height) or not same_crs or not same_transform:
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
                raise InputError(
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
        contextlib.closing(_in_order(client, count_values, calls)) as results,
    ):
        for result in results:
            counts += result
            bar.update(1)
    return np.flatnonzero(counts).tolist()


def _in_order(client: Any, func: Any, calls: Sequence[tuple], window: int | None = None) -> Iterator[Any]:
    """Run ``func(*args)`` for each of ``calls`` on the cluster, at most ``window`` at once; yield results in order."""
    nthreads = sum(client.nthreads().values()) or 1
    window = window or max(4, 2 * nthreads + 2)
    futures: dict[int, Any] = {}
    submitted = 0
    try:
        for i in range(len(calls)):
            while submitted < len(calls) and submitted - i < window:
                futures[submitted] = client.submit(func, *calls[submitted], pure=False, priority=-submitted)
                submitted += 1
            future = futures.pop(i)
            result = future.result()
            future.release()
            yield result
    finally:
        for future in futures.values():
            future.cancel()


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
        contextlib.closing(_in_order(client, vectorize_block, calls)) as results,
    ):
        for result in results:
            writer.write(result.features)
            merged = merger.add(result)
            if len(merged):
                writer.write(
                    finish_polygons(
                        merged.geoms, merged.class_id, merged.stats,
                        transform=job.transform, frame=job.frame, options=job.options,
                    )
                )
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
    min_area: float = 4.0,
    simplify: float = 0.5,
    fill_holes: float = 1.0,
    regularize: bool = False,
    block_size: int = 4096,
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
    .parquet) and is written atomically.
    """
    started = time.perf_counter()
    driver = output_driver(out)
    options = PolygonOptions(
        min_area=_check_number("min_area", min_area),
        simplify=_check_number("simplify", simplify),
        fill_holes=_check_number("fill_holes", fill_holes),
        regularize=bool(regularize),
    )
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size must be an integer >= 1, got {block_size!r}")
    out = check_writable(out, overwrite=overwrite)
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

    if client is not None:
        cluster = contextlib.nullcontext(client)
    elif scheduler:
        cluster = dask_client(ClusterSpec(scheduler=scheduler))
    else:
        # rasterio's polygonising holds the GIL: one single-threaded worker process per core.
        cluster = dask_client(ClusterSpec(workers=workers or os.cpu_count() or 1, threads_per_worker=1))
    with cluster as c:
        if selected is None:
            selected = select_classes(info, None, present=_classes_present(c, info, blocks, progress))
        job = VectorizeJob(
            raster=info.path, class_ids=tuple(x.id for x in selected), height=info.height, width=info.width,
            transform=info.transform, frame=frame, options=options, confidence=conf_path,
        )
        with atomic_path(out, overwrite=overwrite) as tmp:
            writer = FeatureWriter(
                tmp, driver=driver, classes=[(x.id, x.name) for x in selected], crs_wkt=info.crs_wkt,
                source=str(source), with_confidence=conf_path is not None, layer_name=out.stem,
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
