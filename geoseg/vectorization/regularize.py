"""Squaring building outlines: right angles along each outline's dominant orientation.

Works in metric coordinates (see :mod:`geoseg.measure`).  An outline that
fills its minimum rotated rectangle well becomes that rectangle, scaled to
the outline's area and centred on its centroid.  Any other outline (L, T and
U shapes) is rotated upright onto the orientation of its longest wall; its
walls (simplified edges close to vertical or horizontal, positioned on the
mean of the pixel corners along them) give the lines of an irregular grid;
the grid cells the outline covers at least half of make the squared outline,
which is rotated back.  Every corner is then a right angle in the dominant
orientation, walls stay where they were, and area and centroid are kept
approximately.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["regularize_polygon", "regularize_polygons", "dominant_angle", "RECTANGLE_FILL"]

#: Outlines covering at least this share of their minimum rotated rectangle become rectangles.
RECTANGLE_FILL = 0.85


def dominant_angle(polygon, *, tolerance: float) -> float:
    """Orientation in degrees (0 <= angle < 90) of an outline's main wall.

    The outline is simplified by ``tolerance`` so that pixel staircases become
    the edges they trace; the longest of those edges is then refined by a
    total-least-squares line through the original vertices along it (inner and
    outer staircase corners balance out), which is accurate to a fraction of
    a degree for walls many pixels long.
    """
    import shapely

    ring = shapely.get_exterior_ring(polygon)
    coords = np.asarray(shapely.get_coordinates(ring))
    simple = np.asarray(shapely.get_coordinates(shapely.simplify(ring, tolerance)))
    edges = np.diff(simple, axis=0)
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    if len(lengths) == 0 or lengths.max() <= 0:
        return 0.0
    k = int(np.argmax(lengths))
    start, direction = simple[k], edges[k] / lengths[k]
    rel = coords - start
    along = rel @ direction
    across = np.abs(rel[:, 0] * direction[1] - rel[:, 1] * direction[0])
    near = coords[(across <= tolerance * 1.5) & (along >= -tolerance) & (along <= lengths[k] + tolerance)]
    if len(near) >= 3:
        centred = near - near.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        direction = vt[0]
    return math.degrees(math.atan2(direction[1], direction[0])) % 90.0


def regularize_polygon(polygon, *, cell: float):
    """A squared version of one polygon (metric coordinates), or the polygon itself when that is impossible."""
    import shapely
    from shapely import affinity

    area = polygon.area
    if polygon.is_empty or area <= 0 or cell <= 0:
        return polygon
    centroid = polygon.centroid
    rect = shapely.oriented_envelope(polygon)
    if rect.geom_type == "Polygon" and rect.area > 0 and area / rect.area >= RECTANGLE_FILL:
        factor = math.sqrt(area / rect.area)
        squared = affinity.scale(rect, factor, factor, origin=rect.centroid)
        return affinity.translate(squared, centroid.x - squared.centroid.x, centroid.y - squared.centroid.y)
    angle = dominant_angle(polygon, tolerance=cell / 2)
    upright = affinity.rotate(polygon, -angle, origin=centroid)
    minx, miny, maxx, maxy = upright.bounds
    simple = shapely.simplify(upright, cell / 2)
    points = np.asarray(shapely.get_coordinates(upright))
    xs = _wall_positions(simple, points, axis=0, lo=minx, hi=maxx, merge=cell)
    ys = _wall_positions(simple, points, axis=1, lo=miny, hi=maxy, merge=cell)
    gx0, gy0 = (a.ravel() for a in np.meshgrid(xs[:-1], ys[:-1]))
    gx1, gy1 = (a.ravel() for a in np.meshgrid(xs[1:], ys[1:]))
    cells = shapely.box(gx0, gy0, gx1, gy1)
    shapely.prepare(upright)
    covered = shapely.area(shapely.intersection(cells, upright)) / shapely.area(cells)
    kept = cells[covered >= 0.5]
    if len(kept) == 0:
        return polygon
    squared = shapely.simplify(shapely.coverage_union_all(kept), 0.0)
    if squared.is_empty:
        return polygon
    return affinity.rotate(squared, angle, origin=centroid)


def _wall_positions(outline, points: np.ndarray, *, axis: int, lo: float, hi: float, merge: float) -> np.ndarray:
    """Grid lines along ``axis`` (0: x, 1: y) of an upright outline: the positions of its walls across that axis.

    A wall is an edge of the simplified ``outline`` within 20 degrees of
    perpendicular to ``axis`` and at least ``merge`` long, placed at the mean
    of the original vertices ``points`` along it (pixel staircases put as many
    corners outside the true wall as inside).  Walls closer than ``merge``
    merge (length-weighted); a bound with no wall near it becomes a line too.
    """
    import shapely

    positions, weights = [], []
    rings = [shapely.get_exterior_ring(outline)]
    rings += list(shapely.get_interior_ring(outline, range(shapely.get_num_interior_rings(outline))))
    for ring in rings:
        coords = np.asarray(shapely.get_coordinates(ring))
        for p0, p1 in zip(coords[:-1], coords[1:], strict=True):
            along = abs(p1[1 - axis] - p0[1 - axis])
            if along < merge or abs(p1[axis] - p0[axis]) > along * math.tan(math.radians(20)):
                continue
            a0, a1 = sorted((p0[1 - axis], p1[1 - axis]))
            mid = (p0[axis] + p1[axis]) / 2
            span = (points[:, 1 - axis] >= a0) & (points[:, 1 - axis] <= a1)
            near = points[span & (np.abs(points[:, axis] - mid) <= merge)]
            positions.append(float(near[:, axis].mean()) if len(near) else mid)
            weights.append(along)
    order = np.argsort(positions)
    cluster: list[tuple[float, float]] = []
    for p, w in zip(np.asarray(positions)[order], np.asarray(weights)[order], strict=True):
        if cluster and p - cluster[-1][0] <= merge:
            cp, cw = cluster[-1]
            cluster[-1] = ((cp * cw + p * w) / (cw + w), cw + w)
        else:
            cluster.append((p, w))
    lines = [p for p, _ in cluster]
    if not lines or lines[0] > lo + merge:
        lines.insert(0, lo)
    if lines[-1] < hi - merge:
        lines.append(hi)
    return np.unique(np.asarray(lines))


def regularize_polygons(polygons: np.ndarray, *, cell: float) -> np.ndarray:
    """:func:`regularize_polygon` over an array of polygons."""
    out = np.empty(len(polygons), dtype=object)
    for i, polygon in enumerate(polygons):
        out[i] = regularize_polygon(polygon, cell=cell)
    return out
