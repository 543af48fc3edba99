"""geoseg.measure: areas and lengths in metres, true on the WGS 84 ellipsoid, in any CRS."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely

from geoseg.errors import InputError
from geoseg.measure import metric_frame

GEOD = pyproj.Geod(ellps="WGS84")


def measure(epsg: int, lon: float, lat: float, scene_m: float = 10_000.0) -> tuple[float, float, bool]:
    """(area ratio, perimeter ratio, native) of a square half the scene's size against pyproj.Geod."""
    crs = pyproj.CRS.from_epsg(epsg)
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    d = scene_m / 111_000 if crs.is_geographic else scene_m
    frame = metric_frame(crs.to_wkt(), (x - d / 2, y - d / 2, x + d / 2, y + d / 2))
    square = shapely.box(x - d / 4, y - d / 4, x + d / 4, y + d / 4).segmentize(d / 200)
    metric = frame.to_metric(np.array([square]))
    to_lonlat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    lonlat = shapely.transform(square, lambda c: np.column_stack(to_lonlat.transform(c[:, 0], c[:, 1])))
    area, perimeter = GEOD.geometry_area_perimeter(lonlat)
    return frame.area_m2(metric)[0] / abs(area), frame.length_m(metric)[0] / perimeter, frame.native


@pytest.mark.parametrize(
    "epsg, lon, lat",
    [
        (3857, 32.6, 0.3),  # Web Mercator near the equator: its sphere is 0.67 % off the ellipsoid there
        (3857, 10.0, 60.0),
        (4326, 32.6, 0.3),  # degrees
        (32636, 33.0, 0.3),  # UTM on its central meridian
        (32636, 35.5, 0.3),  # UTM near its zone edge
        (5070, -96.0, 40.0),  # Albers equal-area (not conformal)
        (2263, -74.0, 40.7),  # New York state plane, US feet
    ],
)
def test_areas_and_perimeters_match_the_geodesic_ones(epsg, lon, lat):
    area, perimeter, _ = measure(epsg, lon, lat)
    assert area == pytest.approx(1.0, abs=1e-6)
    assert perimeter == pytest.approx(1.0, abs=1e-4)


def test_web_mercator_is_measured_on_the_ellipsoid_not_its_sphere():
    """A 1 km x 1 km UTM square drawn in EPSG:3857 near the equator measures 1 km², not 1.0067 km²."""
    utm = pyproj.CRS.from_epsg(32636)
    to_merc = pyproj.Transformer.from_crs(utm, 3857, always_xy=True)
    square = shapely.box(500_000, 30_000, 501_000, 31_000).segmentize(10)
    merc = shapely.transform(square, lambda c: np.column_stack(to_merc.transform(c[:, 0], c[:, 1])))
    frame = metric_frame(pyproj.CRS.from_epsg(3857).to_wkt(), merc.bounds)
    true_area = 1e6 / 0.9996**2  # UTM grid m² are 0.9996² ground m² on the central meridian
    assert frame.area_m2(frame.to_metric(np.array([merc])))[0] == pytest.approx(true_area, rel=1e-6)
    assert not frame.native  # 3857 is not conformal on the ellipsoid: measured in a local equal-area frame


def test_small_utm_scene_is_measured_natively_with_its_scale():
    frame = metric_frame(pyproj.CRS.from_epsg(32633).to_wkt(), (500_000, 3_999_990, 500_004, 4_000_000))
    assert frame.native
    assert frame.area_scale == pytest.approx(1 / 0.9996**2, rel=1e-9)


def test_a_crs_without_a_datum_is_refused():
    engineering = pyproj.CRS.from_wkt(
        'ENGCRS["local",EDATUM["site"],CS[Cartesian,2],AXIS["x",east,LENGTHUNIT["metre",1]],'
        'AXIS["y",north,LENGTHUNIT["metre",1]]]'
    )
    with pytest.raises(InputError, match="no geodetic datum"):
        metric_frame(engineering.to_wkt(), (0, 0, 10, 10))
