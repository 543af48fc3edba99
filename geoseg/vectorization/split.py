"""Splitting touching buildings: one polygon per predicted building body, by a seeded watershed.

A model with part classes (:class:`geoseg.classes.PartScheme`) predicts each
building as a *body* ringed by *border* pixels, with *contact* pixels where two
buildings touch.  The land-cover map shows all three as one class, so touching
roofs form one connected region; ``geoseg predict`` keeps the parts in a
sidecar raster (:mod:`geoseg.prediction.parts`).  Here each connected region is
cut into buildings: every 4-connected body of at least ``min_seed_area`` is a
seed, and a watershed floods the region from the seeds, bodies first, then
borders, then contact pixels, so each pixel of the region goes to exactly one
building and the buildings tile the region.  A region with fewer than two
seeds stays whole.

Seam safety: the split runs on *whole* regions only: on objects finished inside
a block task, and on objects joined across block seams, after joining.  Its
inputs are the region's own pixels and the sidecar in the region's bounding
box, neither of which depends on the block grid, so every ``block_size`` gives
the same buildings (tests/vectorization/test_split.py checks this property).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import PARTS_TAG, PartScheme, part_sidecar_path, parts_from_json
from ..errors import InputError
from ..tiling import PixelWindow, pixel_transform
from .finish import PieceStats

__all__ = ["PARTS_TAG", "SplitJob", "parts_path_for", "read_part_schemes", "split_job", "split_objects", "split_region"]

#: Flooding order: bodies, then borders, then contact pixels (then anything else inside the region).
_BODY, _BORDER, _CONTACT, _OTHER = 0, 1, 2, 3


def parts_path_for(raster: str | Path) -> Path:
    """Where ``geoseg predict`` writes the part sidecar of the class raster ``raster``: ``<stem>.parts.tif``."""
    return part_sidecar_path(raster)


def read_part_schemes(tags: dict[str, str], what: str) -> tuple[PartScheme, ...]:
    """The part schemes in a raster's :data:`PARTS_TAG` tag (empty without one)."""
    text = tags.get(PARTS_TAG)
    if not text:
        return ()
    try:
        return parts_from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{what}: the {PARTS_TAG} tag is not a valid part table ({exc}); fix or remove the tag"
        ) from None


@dataclass(frozen=True)
class SplitJob:
    """What the split needs; small and picklable (it travels with each block task)."""

    #: The part sidecar: the network's classes (bodies, borders, contacts) on the class raster's grid.
    parts: str
    schemes: tuple[PartScheme, ...]
    #: Seeds (4-connected bodies) smaller than this many pixels are not buildings of their own.
    min_seed_pixels: float = 1.0
    #: Confidence raster on the same grid, for the statistics of split buildings (None: no statistics).
    confidence: str | None = None

    def scheme_for(self, class_id: int) -> PartScheme | None:
        return next((s for s in self.schemes if s.of == class_id), None)

    @staticmethod
    def seed_pixels(min_seed_area: float, pixel_size_m: float) -> float:
        """``min_seed_area`` square metres in pixels of ``pixel_size_m`` metres."""
        return max(1.0, min_seed_area / (pixel_size_m * pixel_size_m)) if pixel_size_m > 0 else 1.0


def split_region(region: np.ndarray, parts: np.ndarray, scheme: PartScheme, min_seed_pixels: float) -> np.ndarray:
    """Building numbers (1..n, 0 outside ``region``) for one connected region; pure.

    ``region`` is a boolean mask of one 4-connected object, ``parts`` the part
    classes over the same pixels.  Seeds are the 4-connected bodies of at least
    ``min_seed_pixels`` pixels, numbered in raster order; fewer than two seeds
    give one building.
    """
    from scipy import ndimage
    from skimage.segmentation import watershed

    cross = ndimage.generate_binary_structure(2, 1)
    body = region & (parts == scheme.of)
    seeds, n = ndimage.label(body, structure=cross)
    if n >= 2:
        sizes = np.bincount(seeds.ravel(), minlength=n + 1)
        keep = sizes >= min_seed_pixels
        keep[0] = False
        numbers = np.cumsum(keep) * keep  # renumber the kept seeds 1..k in raster order
        seeds = numbers[seeds]
        n = int(keep.sum())
    if n < 2:
        return region.astype(np.int32)
    levels = np.full(parts.shape, _OTHER, dtype=np.uint8)
    levels[parts == scheme.of] = _BODY
    levels[parts == scheme.border] = _BORDER
    levels[parts == scheme.contact] = _CONTACT
    return watershed(levels, markers=seeds.astype(np.int32), mask=region, connectivity=1).astype(np.int32)


def _bbox(geom: Any) -> PixelWindow:
    """The pixel window of a polygon in global pixel coordinates (x = column, y = -row)."""
    import shapely

    minx, miny, maxx, maxy = shapely.bounds(geom)
    c0, c1 = int(math.floor(minx)), int(math.ceil(maxx))
    r0, r1 = int(math.floor(-maxy)), int(math.ceil(-miny))
    return PixelWindow(r0, c0, r1 - r0, c1 - c0)


def _trace(numbers: np.ndarray, window: PixelWindow, count: int) -> list[Any]:
    """One polygon per building number 1..count (traced with 4-connectivity, in global pixel coordinates)."""
    import shapely
    from rasterio.features import shapes

    from ..io.vectors import MAKE_VALID


    pieces: list[list[Any]] = [[] for _ in range(count)]
    for geom, value in shapes(numbers, mask=numbers > 0, connectivity=4, transform=pixel_transform(window)):
        pieces[int(value) - 1].append(shapely.geometry.shape(geom))
    out = []
    for parts in pieces:
        geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
        if not geom.is_valid:  # a ring touching itself where pixels meet diagonally
            geom = shapely.make_valid(geom, **MAKE_VALID)
        out.append(geom)
    return out


def _stats(numbers: np.ndarray, count: int, conf: np.ndarray, valid: np.ndarray) -> PieceStats:
    use = (numbers > 0) & valid
    idx, values = numbers[use], conf[use].astype(np.int64)
    total = np.bincount(idx, weights=values, minlength=count + 1)[1:].astype(np.float64)
    n = np.bincount(idx, minlength=count + 1)[1:].astype(np.int64)
    peak = np.zeros(count + 1, dtype=np.uint8)
    np.maximum.at(peak, idx, values.astype(np.uint8))
    return PieceStats(total, n, peak[1:])


def split_objects(
    job: SplitJob, geoms: np.ndarray, class_id: np.ndarray, stats: PieceStats | None
) -> tuple[np.ndarray, np.ndarray, PieceStats | None]:
    """Whole objects (global pixel coordinates) with every region of a split class cut into its buildings.

    Objects of other classes, and regions with fewer than two seeds, come back
    unchanged; split regions come back as their buildings, in place, in seed
    order, with confidence statistics of their own when ``stats`` is given.
    """
    from rasterio.features import rasterize

    from ..io.rasters import open_raster, read_window

    geoms = np.asarray(geoms, dtype=object)
    class_id = np.asarray(class_id)
    if stats is not None and job.confidence is None:
        raise ValueError("split buildings need the confidence raster for their statistics")
    todo = [i for i in range(len(geoms)) if job.scheme_for(int(class_id[i])) is not None]
    if not todo:
        return geoms, class_id, stats
    out_geoms: list[Any] = []
    out_class: list[int] = []
    out_stats: list[tuple[float, int, int]] = []
    with open_raster(job.parts) as parts_ds:
        conf_path = job.confidence if stats is not None else None
        conf_ds = open_raster(conf_path) if conf_path is not None else None
        try:
            for i in range(len(geoms)):
                scheme = job.scheme_for(int(class_id[i]))
                pieces = None
                if scheme is not None:
                    window = _bbox(geoms[i])
                    region = rasterize([(geoms[i], 1)], out_shape=(window.height, window.width),
                                       transform=pixel_transform(window), fill=0, dtype="uint8") > 0
                    (parts,), valid = read_window(job.parts, window, dataset=parts_ds, dtype=None,
                                                  what="part sidecar")
                    numbers = split_region(region, np.where(valid, parts, 255), scheme, job.min_seed_pixels)
                    count = int(numbers.max())
                    if count >= 2:
                        pieces = _trace(numbers, window, count)
                        if conf_ds is not None and conf_path is not None:
                            (conf,), conf_valid = read_window(conf_path, window, dataset=conf_ds, dtype=None,
                                                              what="confidence raster")
                            s = _stats(numbers, count, conf, conf_valid)
                            out_stats += list(zip(s.conf_sum.tolist(), s.conf_count.tolist(), s.conf_max.tolist(),
                                                  strict=True))
                if pieces is None:
                    out_geoms.append(geoms[i])
                    out_class.append(int(class_id[i]))
                    if stats is not None:
                        out_stats.append((float(stats.conf_sum[i]), int(stats.conf_count[i]), int(stats.conf_max[i])))
                else:
                    out_geoms += pieces
                    out_class += [int(class_id[i])] * len(pieces)
        finally:
            if conf_ds is not None:
                conf_ds.close()
    new_geoms = np.empty(len(out_geoms), dtype=object)
    new_geoms[:] = out_geoms
    new_stats = None
    if stats is not None:
        arr = np.asarray(out_stats, dtype=np.float64).reshape(-1, 3)
        new_stats = PieceStats(arr[:, 0], arr[:, 1].astype(np.int64), arr[:, 2].astype(np.uint8))
    return new_geoms, np.asarray(out_class, dtype=class_id.dtype if len(class_id) else np.int32), new_stats


def split_job(
    raster: Any,
    parts: str | os.PathLike[str] | None,
    *,
    split: bool,
    classes: tuple[int, ...],
    confidence: str | None,
    min_seed_area: float,
    pixel_size: float,
) -> SplitJob | None:
    """The split of the class raster ``raster`` (a checked :class:`~geoseg.io.class_rasters.ClassRaster`), or None.

    None when ``split`` is off, or the raster has no part table, or none of
    ``classes`` has parts.  The sidecar is ``parts`` or, by default,
    :func:`parts_path_for` the raster; it must exist and lie on the raster's grid.
    """
    from ..io.grid import same_grid
    from ..io.rasters import inspect_scene, open_raster

    if not split:
        return None
    name = str(raster.path)
    with open_raster(raster.path) as ds:
        schemes = read_part_schemes(ds.tags(), name)
    if not schemes:
        if parts is not None:
            raise InputError(
                f"a part sidecar was given, but {name!r} has no part table ({PARTS_TAG} tag): it was not written by "
                "a model with part classes; leave --parts out"
            )
        return None
    schemes = tuple(s for s in schemes if s.of in classes)
    if not schemes:
        return None
    path = Path(parts) if parts is not None else parts_path_for(raster.path)
    if not path.exists():
        raise InputError(
            f"{name!r} was written by a model that tells touching buildings apart, but its part sidecar "
            f"{str(path)!r} is missing; give it with --parts, or vectorise without splitting (--no-split)"
        )
    info = inspect_scene(path)
    if info.count != 1 or info.dtype != "uint8" or not same_grid(info, raster):
        raise InputError(
            f"part sidecar {str(path)!r} ({info.width}x{info.height} px, {info.count} band(s) of {info.dtype}) is not "
            f"a one-band uint8 raster on the grid of {name!r} ({raster.width}x{raster.height} px); give the sidecar "
            "written with this class raster"
        )
    return SplitJob(info.path, schemes, SplitJob.seed_pixels(min_seed_area, pixel_size), confidence)
