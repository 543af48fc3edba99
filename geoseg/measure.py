"""Measuring polygons in metres whatever the scene's CRS.

Areas, perimeters, minimum areas, hole sizes and simplification tolerances are
given in metres.  :func:`metric_frame` picks, once per scene, the coordinates
those are measured in, after measuring the CRS's true scale on the earth's
ellipsoid (a small square mapped to a Lambert azimuthal equal-area projection
on the CRS's own datum, at the scene centre and at its corners and edges):

* a projected CRS that is conformal and whose areal scale is the same across
  the scene to within :data:`SCALE_TOLERANCE` (UTM, national grids, Web
  Mercator over a city) is used as it is, with that measured scale: areas are
  exact to within the tolerance.  Projection libraries report Web Mercator's
  scale on its sphere, which is 0.67 % off the ellipsoid at the equator; the
  measured scale is not;
* anything else (a geographic CRS in degrees, an equal-area or other
  non-conformal projection, a scene whose scale varies more than that) is
  measured on a Lambert azimuthal equal-area projection centred on the scene,
  on the CRS's own datum: areas are exact there and lengths are true to better
  than 0.1 % within 100 km of the centre.

Geometries are transformed to that frame for measuring and simplifying, and
transformed back to the scene CRS for output.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["MetricFrame", "metric_frame", "SCALE_TOLERANCE"]

#: Largest relative difference of areal scale across a scene (and between the x and y scales) at which a
#: projected CRS is measured in its own coordinates: 1e-4 keeps areas exact to 0.01 %.
SCALE_TOLERANCE = 1e-4
#: Side of the probe squares, in CRS units: big enough for full precision in large coordinates, and small
#: enough against the earth's radius for the local scale to be exact.
_PROBE = 10.0


@dataclass(frozen=True)
class MetricFrame:
    """Coordinates in which a scene's polygons are measured; small and picklable.

    ``local_wkt`` is ``None`` when the scene CRS itself is used, else the WKT
    of the local equal-area projection.  ``length_scale`` is metres per unit
    of the frame's coordinates and ``area_scale`` square metres per square unit.
    """

    crs_wkt: str
    local_wkt: str | None
    length_scale: float
    area_scale: float

    @property
    def native(self) -> bool:
        return self.local_wkt is None

    def to_metric(self, geoms: np.ndarray) -> np.ndarray:
        """Geometries in the scene CRS -> the measuring frame (the same objects when native)."""
        if self.local_wkt is None:
            return geoms
        return _transform(geoms, _transformer(self.crs_wkt, self.local_wkt))

    def from_metric(self, geoms: np.ndarray) -> np.ndarray:
        """Geometries in the measuring frame -> the scene CRS."""
        if self.local_wkt is None:
            return geoms
        return _transform(geoms, _transformer(self.local_wkt, self.crs_wkt))

    def area_m2(self, metric_geoms: np.ndarray) -> np.ndarray:
        import shapely

        return shapely.area(metric_geoms) * self.area_scale

    def length_m(self, metric_geoms: np.ndarray) -> np.ndarray:
        import shapely

        return shapely.length(metric_geoms) * self.length_scale


def metric_frame(crs_wkt: str, bounds: tuple[float, float, float, float]) -> MetricFrame:
    """The measuring frame for a scene in ``crs_wkt`` covering ``bounds`` (left, bottom, right, top)."""
    import pyproj

    crs = pyproj.CRS.from_wkt(crs_wkt)
    left, bottom, right, top = bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    geodetic = crs.geodetic_crs
    if geodetic is None:
        raise InputError(
            f"the raster's CRS ({crs.name}) has no geodetic datum, so metres cannot be measured; "
            "assign a geographic or projected CRS first (gdal_edit.py -a_srs EPSG:XXXX)"
        )
    to_lonlat = pyproj.Transformer.from_crs(crs, geodetic, always_xy=True)
    lon, lat = (cx, cy) if crs.is_geographic else to_lonlat.transform(cx, cy)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InputError(f"the scene centre ({cx}, {cy}) cannot be located on the earth in {crs.name}; check the CRS")
    local = _laea(geodetic, lon, lat)
    if crs.is_projected:
        scale = _local_scale(crs, local, bounds)
        if scale is not None:
            return MetricFrame(crs_wkt, None, math.sqrt(scale), scale)
    return MetricFrame(crs_wkt, local.to_wkt(), 1.0, 1.0)


def _laea(geodetic: Any, lon: float, lat: float) -> Any:
    from pyproj.crs import ProjectedCRS
    from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

    return ProjectedCRS(
        conversion=LambertAzimuthalEqualAreaConversion(latitude_natural_origin=lat, longitude_natural_origin=lon),
        geodetic_crs=geodetic,
    )


def _local_scale(crs: Any, local: Any, bounds: tuple[float, float, float, float]) -> float | None:
    """Square metres per square CRS unit if ``crs`` is conformal at the scene centre and its areal scale is
    uniform across the scene (within :data:`SCALE_TOLERANCE`); else ``None``.

    Probe squares at the centre, corners and edge midpoints are mapped to ``local``, an equal-area
    projection centred on the scene: their areas there are true, and at the centre so are their sides.
    """
    import pyproj

    left, bottom, right, top = bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    h = _PROBE / 2
    centres = [(cx, cy)] + [(x, y) for x in (left, cx, right) for y in (bottom, cy, top) if (x, y) != (cx, cy)]
    xs = [x + dx for x, _ in centres for dx in (-h, h, h, -h)]
    ys = [y + dy for _, y in centres for dy in (-h, -h, h, h)]
    ex, ey = pyproj.Transformer.from_crs(crs, local, always_xy=True).transform(xs, ys)
    corners = np.column_stack([ex, ey]).reshape(len(centres), 4, 2)
    if not np.isfinite(corners).all():
        return None
    x, y = corners[..., 0], corners[..., 1]
    areas = 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)) / (2 * h) ** 2
    bottom_side = np.hypot(*(corners[0, 1] - corners[0, 0]))
    left_side = np.hypot(*(corners[0, 3] - corners[0, 0]))
    if not areas.min() > 0 or abs(bottom_side - left_side) > SCALE_TOLERANCE * max(bottom_side, left_side):
        return None  # not conformal: one scale cannot stand for both directions
    if areas.max() - areas.min() > SCALE_TOLERANCE * areas[0]:
        return None
    return float(areas[0])


@functools.lru_cache(maxsize=16)
def _cached_transformer(src: str, dst: str, thread: int):
    import pyproj

    return pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(src), pyproj.CRS.from_wkt(dst), always_xy=True)


def _transformer(src: str, dst: str):
    # One transformer per thread: PROJ contexts are not shared between threads.
    return _cached_transformer(src, dst, threading.get_ident())


def _transform(geoms: np.ndarray, transformer) -> np.ndarray:
    import shapely

    def project(coords: np.ndarray) -> np.ndarray:
        if len(coords) == 0:
            return coords
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, project)
