"""Measuring polygons in metres whatever the scene's CRS.

Areas, perimeters, minimum areas, hole sizes and simplification tolerances are
given in metres.  :func:`metric_frame` picks, once per scene, the coordinates
those are measured in:

* a projected CRS whose scale is true to within :data:`SCALE_TOLERANCE` at the
  scene centre (UTM, national grids, state planes) is used as it is: planar
  lengths are multiplied by the unit's size in metres, corrected by the
  projection's scale at the scene centre;
* anything else (a geographic CRS in degrees, or Web Mercator away from the
  equator) is measured on a Lambert azimuthal equal-area projection centred on
  the scene, on the CRS's own datum: areas are exact there and lengths are true
  to better than 0.1 % within 100 km of the centre.

Geometries are transformed to that frame for measuring and simplifying, and
transformed back to the scene CRS for output.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["MetricFrame", "metric_frame", "SCALE_TOLERANCE"]

#: Largest areal scale error (as a fraction) at which a projected CRS is measured in its own coordinates.
SCALE_TOLERANCE = 0.005


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
    from pyproj.crs import ProjectedCRS
    from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

    crs = pyproj.CRS.from_wkt(crs_wkt)
    left, bottom, right, top = bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    geodetic = crs.geodetic_crs
    if geodetic is None:
        raise InputError(
            f"the raster's CRS ({crs.name}) has no geodetic datum, so metres cannot be measured; "
            "assign a geographic or projected CRS first (gdal_edit.py -a_srs EPSG:XXXX)"
        )
    if crs.is_geographic:
        lon, lat = cx, cy
    else:
        lon, lat = pyproj.Transformer.from_crs(crs, geodetic, always_xy=True).transform(cx, cy)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InputError(f"the scene centre ({cx}, {cy}) cannot be located on the earth in {crs.name}; check the CRS")
    if crs.is_projected:
        unit = crs.axis_info[0].unit_conversion_factor or 1.0
        try:
            areal = float(pyproj.Proj(crs).get_factors(lon, lat).areal_scale)
        except Exception:  # some projections cannot report their scale factors
            areal = float("nan")
        if math.isfinite(areal) and areal > 0 and abs(areal - 1.0) <= SCALE_TOLERANCE:
            return MetricFrame(crs_wkt, None, unit / math.sqrt(areal), unit * unit / areal)
    local = ProjectedCRS(
        conversion=LambertAzimuthalEqualAreaConversion(latitude_natural_origin=lat, longitude_natural_origin=lon),
        geodetic_crs=geodetic,
    )
    return MetricFrame(crs_wkt, local.to_wkt(), 1.0, 1.0)


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
