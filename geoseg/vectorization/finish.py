"""From whole objects in pixel coordinates to finished, measured features.

:func:`finish_polygons` takes objects that are complete (never cut by a block
seam any more) as polygons in global pixel coordinates, and returns a
:class:`FeatureBatch`: valid, non-empty MultiPolygons in the scene CRS with
their class, area, perimeter and confidence.  The same function runs inside
the block tasks (for objects inside one block) and in the client (for objects
merged across seams), so an object's outcome never depends on the block grid.

Order of operations, all in metres (see :mod:`geoseg.measure`): canonical
form (collinear vertices dropped, rings normalised), holes smaller than
``fill_holes`` filled, optional squaring (:mod:`geoseg.regularize`) or
topology-preserving simplification, repair of anything invalid, measurement,
and last, objects whose final area is under ``min_area`` dropped: the area
that decides is the area written to the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..measure import MetricFrame
from .options import DEFAULT_MIN_AREA, VectorizeOptions

__all__ = ["PolygonOptions", "FeatureBatch", "PieceStats", "finish_polygons", "polygonal_parts"]


@dataclass(frozen=True)
class PolygonOptions:
    """Post-processing settings, in metres and square metres (defaults: :class:`VectorizeOptions`)."""

    min_area: float = DEFAULT_MIN_AREA
    #: ``(class id, min_area)`` of classes with a minimum area of their own.
    class_min_area: tuple[tuple[int, float], ...] = ()
    simplify: float = VectorizeOptions.simplify
    fill_holes: float = VectorizeOptions.fill_holes
    regularize: bool = VectorizeOptions.regularize
    #: Ground size of one pixel in metres (sets the squaring grid).
    pixel_size: float = 1.0
    #: Class ids finished as oriented rectangles (vehicles; see :mod:`geoseg.vectorization.rectangles`).
    rectangles: tuple[int, ...] = ()

    @property
    def regularize_cell(self) -> float:
        return max(self.simplify, 2.0 * self.pixel_size)

    def min_areas(self, class_ids: np.ndarray) -> np.ndarray:
        """The minimum area (m²) of each object of ``class_ids``."""
        out = np.full(len(class_ids), float(self.min_area))
        for class_id, area in self.class_min_area:
            out[class_ids == class_id] = area
        return out

    def without_min_area(self) -> PolygonOptions:
        return replace(self, min_area=0.0, class_min_area=())


@dataclass(frozen=True)
class PieceStats:
    """Confidence accumulated over an object's pixels: sum and count of valid values, and the maximum (0-255)."""

    conf_sum: np.ndarray
    conf_count: np.ndarray
    conf_max: np.ndarray

    @classmethod
    def empty(cls) -> PieceStats:
        return cls(np.zeros(0, np.float64), np.zeros(0, np.int64), np.zeros(0, np.uint8))

    def take(self, index: np.ndarray) -> PieceStats:
        return PieceStats(self.conf_sum[index], self.conf_count[index], self.conf_max[index])


@dataclass
class FeatureBatch:
    """Finished features: WKB MultiPolygons in the scene CRS and their attributes (one row each)."""

    wkb: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    area_m2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    perimeter_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Mean and maximum confidence in 0..1 (NaN where no confidence was read), or None without a confidence raster.
    conf_mean: np.ndarray | None = None
    conf_max: np.ndarray | None = None
    #: Rectangle classes: ``(n, 4)`` orientation_deg, length_m, width_m, rect_fill (NaN for other classes), or None.
    shape: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.wkb)

    def take(self, index: np.ndarray) -> FeatureBatch:
        return FeatureBatch(
            self.wkb[index], self.class_id[index], self.area_m2[index], self.perimeter_m[index],
            None if self.conf_mean is None else self.conf_mean[index],
            None if self.conf_max is None else self.conf_max[index],
            None if self.shape is None else self.shape[index],
        )

    @staticmethod
    def concat(batches: list[FeatureBatch]) -> FeatureBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return FeatureBatch()
        with_conf = batches[0].conf_mean is not None
        return FeatureBatch(
            np.concatenate([b.wkb for b in batches]),
            np.concatenate([b.class_id for b in batches]),
            np.concatenate([b.area_m2 for b in batches]),
            np.concatenate([b.perimeter_m for b in batches]),
            np.concatenate([b.conf_mean for b in batches]) if with_conf else None,
            np.concatenate([b.conf_max for b in batches]) if with_conf else None,
            np.concatenate([np.full((len(b), 4), np.nan) if b.shape is None else b.shape for b in batches])
            if any(b.shape is not None for b in batches) else None,
        )


def polygonal_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid, non-empty polygons of each geometry (repaired with make_valid where needed) and their owner index."""
    import shapely

    from ..io.vectors import repair_polygons  # here: io.vectors brings rasterio, which this module need not

    geoms, _ = repair_polygons(geoms)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    # make_valid may return collections; their polygonal members are one level further down.
    nested = shapely.get_type_id(parts) == shapely.GeometryType.MULTIPOLYGON
    collections = shapely.get_type_id(parts) == shapely.GeometryType.GEOMETRYCOLLECTION
    if nested.any() or collections.any():
        deeper = nested | collections
        sub, sub_owner = shapely.get_parts(parts[deeper], return_index=True)
        parts = np.concatenate([parts[~deeper], sub])
        owner = np.concatenate([owner[~deeper], owner[deeper][sub_owner]])
        order = np.argsort(owner, kind="stable")
        parts, owner = parts[order], owner[order]
    keep = (shapely.get_type_id(parts) == shapely.GeometryType.POLYGON) & ~shapely.is_empty(parts)
    keep &= shapely.area(np.where(keep, parts, None)) > 0
    return parts[keep], owner[keep]


def _pixel_to_crs(geoms: np.ndarray, transform: tuple[float, ...]) -> np.ndarray:
    import shapely

    a, b, c, d, e, f = transform

    def apply(coords: np.ndarray) -> np.ndarray:
        col, row = coords[:, 0], -coords[:, 1]
        return np.column_stack([a * col + b * row + c, d * col + e * row + f])

    return shapely.transform(geoms, apply)


def _fill_holes(
    parts: np.ndarray, metric: np.ndarray, frame: MetricFrame, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drop interior rings under ``threshold`` m² from ``parts`` (scene CRS) and their ``metric`` twins."""
    import shapely

    holes = shapely.get_num_interior_rings(parts)
    if not holes.any():
        return parts, metric
    native = metric is parts
    parts = parts.copy()
    metric = parts if native else metric.copy()
    for i in np.flatnonzero(holes):
        rings = shapely.get_interior_ring(metric[i], np.arange(holes[i]))
        keep = frame.area_m2(shapely.polygons(rings)) >= threshold
        if keep.all():
            continue
        for arr in (parts,) if native else (parts, metric):
            shell = shapely.get_exterior_ring(arr[i])
            inner = shapely.get_interior_ring(arr[i], np.flatnonzero(keep))
            arr[i] = shapely.polygons(shell, holes=inner if len(inner) else None)
    return parts, metric


def finish_polygons(
    pixel_geoms: np.ndarray,
    class_ids: np.ndarray,
    stats: PieceStats | None,
    *,
    transform: tuple[float, ...],
    frame: MetricFrame,
    options: PolygonOptions,
) -> FeatureBatch:
    """Finish whole objects given as polygons in the global pixel frame (x = column, y = -row)."""
    import shapely

    pixel_geoms = np.asarray(pixel_geoms, dtype=object)
    class_ids = np.asarray(class_ids, dtype=np.int32)
    if len(pixel_geoms) == 0:
        empty = None if stats is None else np.zeros(0)
        return FeatureBatch(conf_mean=empty, conf_max=empty)
    if options.rectangles:
        from .rectangles import finish_with_rectangles

        return finish_with_rectangles(pixel_geoms, class_ids, stats, transform=transform, frame=frame, options=options)
    # Canonical form in exact pixel coordinates: the same object gives the same rings however it was assembled.
    parts, owner = polygonal_parts(pixel_geoms)
    # Tolerance 0 only drops collinear vertices, which cannot change a valid polygon: plain Douglas-Peucker will do.
    parts = shapely.normalize(shapely.simplify(parts, 0.0, preserve_topology=False))
    parts = _pixel_to_crs(parts, transform)
    metric = frame.to_metric(parts)
    if options.fill_holes > 0:
        parts, metric = _fill_holes(parts, metric, frame, options.fill_holes)

    min_areas = options.min_areas(class_ids)
    if (min_areas > 0).any() and not options.regularize:
        # Cheap early drop of objects that no simplification can bring up to min_area: Douglas-Peucker keeps
        # the outline within ``simplify`` of itself, so the area changes by less than perimeter x simplify.
        n = len(pixel_geoms)
        area = np.bincount(owner, weights=frame.area_m2(metric), minlength=n)
        reach = np.bincount(owner, weights=frame.length_m(metric), minlength=n) * options.simplify
        keep = (area + 2 * reach >= min_areas)[owner]
        parts, metric, owner = parts[keep], metric[keep], owner[keep]

    changed = False
    if options.regularize and len(metric):
        # Squared outlines are already simple: simplifying them would cut their right angles.
        from .regularize import regularize_polygons

        metric = regularize_polygons(metric, cell=options.regularize_cell / frame.length_scale)
        changed = True
    elif options.simplify > 0 and len(metric):
        metric = shapely.simplify(metric, options.simplify / frame.length_scale, preserve_topology=True)
        changed = True
    if changed:
        parts = frame.from_metric(metric)
    parts, sub = polygonal_parts(parts)
    owner = owner[sub]
    if len(parts) == 0:
        return finish_polygons(pixel_geoms[:0], class_ids[:0], stats, transform=transform, frame=frame, options=options)
    metric = frame.to_metric(parts) if (changed or not frame.native) else parts

    features, owner = np.unique(owner, return_inverse=True)
    area = np.bincount(owner, weights=frame.area_m2(metric), minlength=len(features))
    if (min_areas > 0).any():
        keep_feature = area >= min_areas[features]
        if not keep_feature.all():
            keep = keep_feature[owner]
            parts, metric, area = parts[keep], metric[keep], area[keep_feature]
            features, owner = np.unique(features[owner[keep]], return_inverse=True)
        if len(parts) == 0:
            return finish_polygons(pixel_geoms[:0], class_ids[:0], stats, transform=transform, frame=frame,
                                   options=options)
    multi = shapely.multipolygons(parts, indices=owner)
    batch = FeatureBatch(
        wkb=shapely.to_wkb(multi),
        class_id=class_ids[features],
        area_m2=area,
        perimeter_m=np.bincount(owner, weights=frame.length_m(metric), minlength=len(features)),
    )
    if stats is not None:
        count = stats.conf_count[features].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            batch.conf_mean = np.where(count > 0, stats.conf_sum[features] / np.maximum(count, 1) / 255.0, math.nan)
        batch.conf_max = np.where(count > 0, stats.conf_max[features] / 255.0, math.nan)
    return batch
