"""Vehicles as oriented rectangles: one polygon per object, with its orientation, length and width.

Objects of the *rectangle classes* (:data:`RECTANGLE_CLASSES`: vehicles) are
finished here instead of by plain simplification or building squaring.  Each
object is one vehicle: touching vehicles were already cut apart, by the part
split (:mod:`geoseg.vectorization.split`) for models that predict vehicle
bodies, borders and contacts.  For each whole object, in metres
(:mod:`geoseg.measure`):

* its minimum rotated rectangle is found; when the object fills at least
  :data:`RECTANGLE_FILL` of it, the object *becomes* that rectangle, scaled
  about its centre to the object's area (a pixel staircase sticks out of the
  true outline at its corners, so the bare envelope would be too large);
  otherwise (a truck with a cab, a partly hidden car) the outline is kept and
  simplified by at most :data:`SIMPLIFY_M` (``--simplify`` suits buildings, not
  two-metre-wide cars);
* ``orientation_deg`` is the direction of the long side, clockwise from grid
  north, in ``[0, 180)``; ``length_m`` and ``width_m`` the rectangle's sides;
  ``rect_fill`` the share of the rectangle the object filled;
* ``min_area`` applies to the area written.

Everything depends on the object alone, and objects reach this step whole
(after seams are joined), so the rectangles are the same whatever the block
size.  Confidence statistics (``conf_mean``, ``conf_max``) are those of the
object's pixels in the blended probabilities, computed before this step.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ..measure import MetricFrame
from .finish import FeatureBatch, PieceStats, PolygonOptions, finish_polygons, polygonal_parts

__all__ = ["RECTANGLE_CLASSES", "RECTANGLE_FILL", "SHAPE_FIELDS", "SIMPLIFY_M", "finish_with_rectangles",
           "oriented_rectangle", "rectangle_class_ids"]

#: Class names whose objects are finished as oriented rectangles.
RECTANGLE_CLASSES = ("vehicle",)
#: Objects covering at least this share of their minimum rotated rectangle become that rectangle.
RECTANGLE_FILL = 0.75
#: Largest simplification tolerance, in metres, for outlines that do not become rectangles.
SIMPLIFY_M = 0.2
#: Attribute columns written for the rectangle classes (NaN for other classes in single-layer formats).
SHAPE_FIELDS = ("orientation_deg", "length_m", "width_m", "rect_fill")


def rectangle_class_ids(classes: Any) -> tuple[int, ...]:
    """Ids of the classes (``ClassInfo``-like, with ``id`` and ``name``) finished as rectangles."""
    return tuple(int(c.id) for c in classes if str(c.name).lower() in RECTANGLE_CLASSES)


def _sides(rect: Any) -> tuple[float, float, float]:
    """Long side, short side and the long side's direction (degrees clockwise from north, [0, 180))."""
    coords = np.asarray(rect.exterior.coords)[:3]
    edges = np.diff(coords, axis=0)
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    k = int(np.argmax(lengths))
    dx, dy = edges[k]
    azimuth = round(math.degrees(math.atan2(dx, dy)), 6) % 180.0  # to a micro-degree: never reads 180
    return float(lengths.max()), float(lengths.min()), azimuth


def oriented_rectangle(polygon: Any, *, fill: float = RECTANGLE_FILL) -> tuple[Any, float, float, float, float]:
    """``(shape, orientation_deg, long, short, fill)`` of one (multi)polygon in metric coordinates.

    ``shape`` is the area-preserving rotated rectangle when the polygon fills at
    least ``fill`` of its minimum rotated rectangle, else the polygon itself.
    ``long``/``short`` are in the polygon's units; the orientation is the long
    side's, clockwise from the y axis.
    """
    import shapely
    from shapely import affinity

    area = polygon.area
    rect = shapely.oriented_envelope(polygon)
    if polygon.is_empty or area <= 0 or rect.geom_type != "Polygon" or rect.area <= 0:
        return polygon, math.nan, math.nan, math.nan, math.nan
    ratio = area / rect.area
    shape = polygon
    if ratio >= fill:
        factor = math.sqrt(ratio)
        centroid = polygon.centroid
        scaled = affinity.scale(rect, factor, factor, origin=rect.centroid)
        shape = affinity.translate(scaled, centroid.x - scaled.centroid.x, centroid.y - scaled.centroid.y)
        rect = shape
    long, short, azimuth = _sides(rect)
    return shape, azimuth, long, short, ratio


def finish_with_rectangles(
    pixel_geoms: np.ndarray,
    class_ids: np.ndarray,
    stats: PieceStats | None,
    *,
    transform: tuple[float, ...],
    frame: MetricFrame,
    options: PolygonOptions,
) -> FeatureBatch:
    """:func:`~geoseg.vectorization.finish.finish_polygons` with the rectangle classes as oriented rectangles.

    Objects of other classes are finished as usual; both come back in one batch
    (the others first), the rectangle classes with :data:`SHAPE_FIELDS`.
    """

    pixel_geoms = np.asarray(pixel_geoms, dtype=object)
    class_ids = np.asarray(class_ids, dtype=np.int32)
    plain = replace(options, rectangles=())
    is_rect = np.isin(class_ids, np.asarray(options.rectangles, dtype=np.int32))
    rest = np.flatnonzero(~is_rect)
    out = [finish_polygons(pixel_geoms[rest], class_ids[rest], None if stats is None else stats.take(rest),
                           transform=transform, frame=frame, options=plain)]
    picked = np.flatnonzero(is_rect)
    if len(picked):
        # The objects as they are (canonical, holes filled), measured later on their final shape.
        raw = finish_polygons(pixel_geoms[picked], class_ids[picked], None if stats is None else stats.take(picked),
                              transform=transform, frame=frame,
                              options=replace(plain.without_min_area(), simplify=0.0, regularize=False))
        out.append(_rectangles(raw, frame, options))
    return FeatureBatch.concat(out) if any(len(b) for b in out) else out[0]


def _rectangles(batch: FeatureBatch, frame: MetricFrame, options: PolygonOptions) -> FeatureBatch:
    import shapely

    if not len(batch):
        batch.shape = np.zeros((0, len(SHAPE_FIELDS)))
        return batch
    geoms = shapely.from_wkb(batch.wkb)
    metric = frame.to_metric(geoms)
    shapes = np.empty(len(metric), dtype=object)
    attrs = np.full((len(metric), len(SHAPE_FIELDS)), np.nan)
    tolerance = min(options.simplify, SIMPLIFY_M) / frame.length_scale
    for i, polygon in enumerate(metric):
        shape, azimuth, long, short, ratio = oriented_rectangle(polygon)
        if shape is polygon and tolerance > 0:
            shape = shapely.simplify(polygon, tolerance, preserve_topology=True)
        shapes[i] = shape
        attrs[i] = (azimuth, long * frame.length_scale, short * frame.length_scale, ratio)
    native = frame.from_metric(shapes)
    parts, owner = polygonal_parts(native)
    multi = np.empty(len(native), dtype=object)
    multi[:] = [None] * len(native)
    for i in range(len(native)):
        mine = parts[owner == i]
        multi[i] = shapely.multipolygons(mine) if len(mine) else None
    keep = np.array([g is not None for g in multi])
    metric_final = frame.to_metric(np.asarray([g for g in multi[keep]], dtype=object))
    area = np.zeros(len(multi))
    perimeter = np.zeros(len(multi))
    area[keep] = frame.area_m2(metric_final)
    perimeter[keep] = frame.length_m(metric_final)
    keep &= area >= options.min_areas(batch.class_id)
    index = np.flatnonzero(keep)
    result = batch.take(index)
    result.wkb = shapely.to_wkb(np.asarray(list(multi[index]), dtype=object)) if len(index) else np.zeros(0, object)
    result.area_m2 = area[index]
    result.perimeter_m = perimeter[index]
    result.shape = attrs[index]
    return result
