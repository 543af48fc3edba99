"""Finishing objects: areas and lengths in metres in any CRS, hole filling, minimum area, simplification, squaring."""

from __future__ import annotations

import numpy as np
import pytest
from support.vector_cases import PIXEL_M2, class_raster, read_layers

from geoseg.vectorization.api import vectorize

# rasterio silences this warning around its in-memory datasets with warnings.catch_warnings, which is not
# thread-safe: with two tasks in one process (the in-process test cluster) it can leak out spuriously.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


# -- metres in any CRS -----------------------------------------------------------------------------

def test_geographic_raster_measures_in_square_metres(client, tmp_path):
    """The same objects on a UTM grid and on a degree grid: areas agree within 1 %, filters work in m²."""
    from rasterio.transform import from_bounds, from_origin
    from rasterio.warp import transform_bounds

    a = np.zeros((200, 200), dtype=np.uint8)
    a[20:60, 30:90] = 1  # 40 x 60 px of 2 m: 9600 m²
    a[100:180, 120:150] = 1  # 9600 m²
    a[120:122, 20:22] = 1  # 4 px of ~4 m²: 16 m²
    a[150, 40] = 1  # one pixel: ~4 m², dropped by min_area=10
    utm_transform = from_origin(500000.0, 5000000.0, 2.0, 2.0)  # 45 deg N
    utm = class_raster(tmp_path / "utm.tif", a, crs="EPSG:32633", transform=utm_transform)
    bounds = transform_bounds("EPSG:32633", "EPSG:4326", 500000.0, 5000000.0 - 400, 500400.0, 5000000.0)
    geo = class_raster(tmp_path / "geo.tif", a, crs="EPSG:4326", transform=from_bounds(*bounds, 200, 200))
    opts = dict(classes="building", min_area=10, fill_holes=0, simplify=0, client=client)
    in_utm = read_layers(vectorize(utm, tmp_path / "utm.gpkg", **opts).output)["building"]
    in_geo = read_layers(vectorize(geo, tmp_path / "geo.gpkg", block_size=64, **opts).output)["building"]
    assert len(in_utm) == len(in_geo) == 3
    np.testing.assert_allclose(np.sort(in_geo.area_m2), np.sort(in_utm.area_m2), rtol=0.01)
    np.testing.assert_allclose(np.sort(in_geo.perimeter_m), np.sort(in_utm.perimeter_m), rtol=0.01)
    assert np.sort(in_utm.area_m2)[0] == pytest.approx(16, rel=0.01)
    assert in_geo.crs.to_epsg() == 4326
    # Simplifying by 1 m in degrees-based coordinates keeps the shapes (a tolerance in degrees would not).
    simplified = read_layers(vectorize(geo, tmp_path / "geo_s.gpkg", **{**opts, "simplify": 1.0}).output)["building"]
    np.testing.assert_allclose(np.sort(simplified.area_m2), np.sort(in_geo.area_m2), rtol=0.02)



def test_fill_holes_and_min_area_in_square_metres(client, tmp_path):
    a = np.zeros((24, 24), dtype=np.uint8)
    a[2:14, 2:14] = 1
    a[4, 4] = 0  # 0.25 m² hole: filled by fill_holes=1
    a[7:11, 7:11] = 0  # 4 m² hole: kept
    a[20:22, 20:23] = 1  # 1.5 m²: dropped by min_area=2
    raster = class_raster(tmp_path / "h.tif", a)
    result = vectorize(
        raster, tmp_path / "h.gpkg", classes="building", block_size=6, client=client,
        min_area=2, fill_holes=1, simplify=0,
    )
    df = read_layers(result.output)["building"]
    assert len(df) == 1
    polygon = df.geometry.iloc[0].geoms[0]
    assert len(polygon.interiors) == 1
    assert df.area_m2.iloc[0] == pytest.approx((144 - 16) * PIXEL_M2)


def test_simplified_neighbours_stay_valid_and_barely_overlap(client, tmp_path):
    """A staircase boundary between two classes, simplified by 1 m on 0.5 m pixels.

    Each outline is simplified on its own (topology preserved within it), so a
    shared boundary may shift by up to the tolerance; the overlap it leaves is
    a thin sliver, on average well under the tolerance wide.
    """
    import shapely

    yy, xx = np.mgrid[0:60, 0:60]
    a = np.where(xx > 0.6 * yy + 10, 1, 2).astype(np.uint8)
    a[(xx - 45) ** 2 + (yy - 40) ** 2 < 80] = 2
    raster = class_raster(tmp_path / "n.tif", a)
    opts = dict(block_size=16, client=client, min_area=0, fill_holes=0)
    exact = read_layers(vectorize(raster, tmp_path / "exact.gpkg", simplify=0, **opts).output)
    simple = read_layers(vectorize(raster, tmp_path / "simple.gpkg", simplify=1.0, **opts).output)
    shared = shapely.intersection(
        shapely.union_all(exact["building"].geometry.values).boundary,
        shapely.union_all(exact["vehicle"].geometry.values).boundary,
    ).length
    assert shared > 50
    building = shapely.union_all(simple["building"].geometry.values)
    vehicle = shapely.union_all(simple["vehicle"].geometry.values)
    assert simple["building"].is_valid.all() and simple["vehicle"].is_valid.all()
    assert building.intersection(vehicle).area < 0.25 * 1.0 * shared
    assert sum(len(shapely.get_coordinates(g)) for g in simple["building"].geometry) < 0.2 * sum(
        len(shapely.get_coordinates(g)) for g in exact["building"].geometry
    )


def test_regularize_squares_outlines_in_place(client, tmp_path):
    """A rotated rectangle and a rotated L shape come out with right angles, area and centroid kept."""
    import shapely
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from shapely import affinity

    transform = from_origin(500000.0, 4000000.0, 0.25, 0.25)
    rect = affinity.rotate(shapely.box(500004, 3999980, 500016, 3999988), 25, origin="centroid")
    corners = [(4, 62), (20, 62), (20, 67), (10, 67), (10, 76), (4, 76)]
    ell = shapely.Polygon([(500000 + x, 3999900 + y) for x, y in corners])
    ell = affinity.rotate(ell, -35, origin="centroid")
    a = rasterize([(rect, 1), (ell, 1)], out_shape=(200, 100), transform=transform, dtype="uint8")
    raster = class_raster(tmp_path / "r.tif", a, transform=transform)
    opts = dict(classes="building", block_size=40, client=client, simplify=0.25, min_area=1, fill_holes=1)
    plain = read_layers(vectorize(raster, tmp_path / "plain.gpkg", **opts).output)["building"]
    square = read_layers(vectorize(raster, tmp_path / "square.gpkg", regularize=True, **opts).output)["building"]
    assert len(plain) == len(square) == 2
    plain, square = plain.sort_values("area_m2"), square.sort_values("area_m2")
    for before, after, truth in zip(
        plain.geometry, square.geometry, sorted([rect, ell], key=lambda g: g.area), strict=True
    ):
        assert after.is_valid
        ring = np.asarray(after.geoms[0].exterior.coords)[:-1]
        edges = np.roll(ring, -1, axis=0) - ring
        cosines = np.abs(np.sum(edges * np.roll(edges, -1, axis=0), axis=1)) / (
            np.linalg.norm(edges, axis=1) * np.linalg.norm(np.roll(edges, -1, axis=0), axis=1)
        )
        assert cosines.max() < 0.02, "every corner is a right angle"
        assert after.area == pytest.approx(truth.area, rel=0.05)
        assert after.centroid.distance(truth.centroid) < 0.3
        assert after.centroid.distance(before.centroid) < 0.3
    assert len(square.geometry.iloc[0].geoms[0].exterior.coords) == 5  # the rectangle
    assert len(square.geometry.iloc[1].geoms[0].exterior.coords) == 7  # the L keeps six corners

