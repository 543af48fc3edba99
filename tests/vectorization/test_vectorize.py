"""geoseg.vectorize: seam-aware polygons per class, measured in metres, written atomically."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from support.rasters import write_raster

from geoseg.atomic import TMP_MARKER
from geoseg.classes import CLASSES_TAG, ClassInfo, classes_to_json
from geoseg.errors import ConfigError, InputError, OutputExistsError
from geoseg.vectorization.api import vectorize

SCHEME = (ClassInfo(0, "background"), ClassInfo(1, "building"), ClassInfo(2, "vehicle"), ClassInfo(3, "road"))
PIXEL = 0.5  # metres, the default grid of write_raster (EPSG:32633 at its central meridian)
UTM_AREA_SCALE = 0.9996**2  # UTM's areal scale on the central meridian: ground m² = grid m² / this
PIXEL_M2 = PIXEL * PIXEL / UTM_AREA_SCALE
EXACT = dict(min_area=0, simplify=0, fill_holes=0)

# rasterio silences this warning around its in-memory datasets with warnings.catch_warnings, which is not
# thread-safe: with two tasks in one process (the in-process test cluster) it can leak out spuriously.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        yield c


def class_raster(path: Path, array: np.ndarray, *, scheme=SCHEME, **kwargs) -> Path:
    """A geoseg class raster: uint8 ids, nodata 255, the class table in its tag."""
    import rasterio

    write_raster(path, array.astype(np.uint8), nodata=255, **kwargs)
    if scheme is not None:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(**{CLASSES_TAG: classes_to_json(scheme)})
    return path


def read_layers(path: Path) -> dict:
    import pyogrio

    return {name: pyogrio.read_dataframe(path, layer=name) for name, _ in pyogrio.list_layers(path)}


def burn(geoms, shape, transform) -> np.ndarray:
    from rasterio.features import rasterize

    geoms = [g for g in geoms]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return rasterize(((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0, dtype="uint8") > 0


def components(array: np.ndarray, value: int) -> int:
    """4-connected components of ``value``, counted by polygonising the whole array at once."""
    from rasterio.features import shapes

    mask = array == value
    if not mask.any():
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pixel coordinates are all a count needs
        return sum(1 for _ in shapes(mask.astype(np.uint8), mask=mask, connectivity=4))


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if TMP_MARKER in p.name]


# -- properties ----------------------------------------------------------------------------------

SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

@st.composite
def class_arrays(draw):
    """Random class arrays, from pixel noise to blobs (cells of up to 3x3 pixels), with some nodata."""
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    cells = draw(arrays(np.uint8, (h, w), elements=st.sampled_from([0, 0, 1, 1, 1, 2, 255])))
    scale = draw(st.integers(1, 3))
    array = np.kron(cells, np.ones((scale, scale), dtype=np.uint8))
    return array[: draw(st.integers(1, array.shape[0])), : draw(st.integers(1, array.shape[1]))]


@settings(max_examples=30, deadline=None, suppress_health_check=SLOW_OK)
@given(array=class_arrays(), block_size=st.integers(1, 6))
def test_polygons_burn_back_to_the_mask(client, tmp_path_factory, array, block_size):
    import rasterio

    folder = tmp_path_factory.mktemp("prop")
    raster = class_raster(folder / "classes.tif", array)
    result = vectorize(
        raster, folder / "out.gpkg", classes=["building", "vehicle"], block_size=block_size, client=client, **EXACT
    )
    layers = read_layers(result.output)
    transform = rasterio.open(raster).transform
    for class_id, name in [(1, "building"), (2, "vehicle")]:
        df = layers[name]
        assert df.geometry.is_valid.all() and not df.geometry.is_empty.any()
        assert set(df.geometry.geom_type) <= {"MultiPolygon"}
        np.testing.assert_array_equal(burn(df.geometry, array.shape, transform), array == class_id)
        # One feature per 4-connected object, exactly as when the raster is vectorised whole, without overlaps.
        assert len(df) == components(array, class_id) == result.features[name]
        assert df.area_m2.sum() == pytest.approx((array == class_id).sum() * PIXEL_M2, rel=1e-9)


@settings(max_examples=12, deadline=None, suppress_health_check=SLOW_OK)
@given(array=class_arrays(), block_size=st.integers(2, 5))
def test_block_grid_does_not_change_the_result(client, tmp_path_factory, array, block_size):
    """Filters, hole filling and simplification run after seams are joined: any block grid gives the same features."""
    import shapely

    folder = tmp_path_factory.mktemp("grid")
    raster = class_raster(folder / "classes.tif", array)
    opts = dict(min_area=0.6, simplify=0.6, fill_holes=0.3, client=client)
    small = read_layers(vectorize(raster, folder / "small.gpkg", block_size=block_size, **opts).output)
    whole = read_layers(vectorize(raster, folder / "whole.gpkg", block_size=4096, **opts).output)
    assert small.keys() == whole.keys()
    for name in small:
        a = sorted(shapely.to_wkb(shapely.normalize(small[name].geometry.values)))
        b = sorted(shapely.to_wkb(shapely.normalize(whole[name].geometry.values)))
        assert a == b
        assert small[name].geometry.is_valid.all()


# -- seams -----------------------------------------------------------------------------------------

def test_objects_across_every_kind_of_seam(client, tmp_path):
    """Blocks of 8 px (seams at 8, 16, 24): objects across edges and corners come out whole."""
    a = np.zeros((32, 32), dtype=np.uint8)
    a[2:5, 5:11] = 1  # across the vertical seam at col 8: 18 px
    a[13:19, 2:5] = 1  # across the horizontal seam at row 16: 18 px
    a[14:19, 14:19] = 1  # around the corner (16, 16), in 4 blocks: 25 px
    a[19:25, 7] = 1  # an L around the corner (24, 8): down across row 24 ...
    a[24, 8:13] = 1  # ... then right across col 8, in 3 blocks: 11 px
    a[22:24, 22:24] = 1  # two squares meeting only at the corner point (24, 24):
    a[24:26, 24:26] = 1  # two objects under 4-connectivity, 4 px each
    a[26:31, 10:20] = 1
    a[27:30, 14:18] = 0  # a ring across col 16 whose 12-px hole is cut by the seam too: 38 px
    a[7:9, 23:25] = 2  # a 2x2 vehicle around the corner (8, 24): four 1-px quarters, 1 m² in all
    raster = class_raster(tmp_path / "seams.tif", a)
    opts = dict(client=client, min_area=0.75, simplify=0, fill_holes=0)
    result = vectorize(raster, tmp_path / "seams.gpkg", block_size=8, **opts)
    layers = read_layers(result.output)

    assert result.features == {"building": 7, "vehicle": 1, "road": 0}
    buildings = layers["building"].sort_values("area_m2")
    np.testing.assert_allclose(buildings.area_m2, np.array([4, 4, 11, 18, 18, 25, 38]) * PIXEL_M2, rtol=1e-9)
    assert all(len(g.geoms) == 1 for g in buildings.geometry)
    assert len(buildings.geometry.iloc[-1].geoms[0].interiors) == 1
    # The tiny vehicle is 4 px = 1 m²: each quarter (0.25 m²) alone would fail min_area=0.75.
    vehicle = layers["vehicle"].iloc[0]
    assert vehicle.area_m2 == pytest.approx(4 * PIXEL_M2, rel=1e-9)
    assert vehicle.perimeter_m == pytest.approx(8 * PIXEL / 0.9996, rel=1e-9)
    # The raster vectorised in one block gives the same features.
    whole = read_layers(vectorize(raster, tmp_path / "whole.gpkg", block_size=64, **opts).output)
    assert sorted(whole["building"].area_m2) == pytest.approx(sorted(buildings.area_m2), rel=1e-12)
    assert len(whole["vehicle"]) == 1


def test_real_mask_block_by_block(client, shared_data, tmp_path):
    """The Kampala building mask (3072x2048, EPSG:3857) in 512-px blocks burns back to itself."""
    import rasterio

    mask_path = shared_data / "kampala" / "kampala_oam_cluster1_mask.tif"
    result = vectorize(mask_path, tmp_path / "kampala.gpkg", classes=[1], block_size=512, client=client, **EXACT)
    layers = read_layers(result.output)
    assert list(layers) == ["class_1"]
    df = layers["class_1"]
    with rasterio.open(mask_path) as ds:
        mask = ds.read(1)
        transform = ds.transform
    assert len(df) == components(mask, 1)
    np.testing.assert_array_equal(burn(df.geometry, mask.shape, transform), mask == 1)
    assert df.geometry.is_valid.all()
    # Web Mercator at 0.3 deg N: areas within 0.1 % of the pixel count times the ground pixel area.
    lat = 0.35
    ground_px = abs(transform.a * transform.e) * math.cos(math.radians(lat)) ** 2
    assert df.area_m2.sum() == pytest.approx((mask == 1).sum() * ground_px, rel=1e-3)
    assert set(df.source) == {mask_path.name}


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


# -- output ----------------------------------------------------------------------------------------

def ogrinfo_summary(path: Path) -> dict[str, dict[str, str]]:
    """Layers of ``ogrinfo -so -al``: name -> {geometry, count, srs}."""
    text = subprocess.run(["ogrinfo", "-so", "-al", str(path)], capture_output=True, text=True, check=True).stdout
    layers = {}
    for block in text.split("Layer name: ")[1:]:
        name = block.splitlines()[0].strip()
        layers[name] = {
            "geometry": re.search(r"^Geometry: (.+)$", block, re.M).group(1),
            "count": int(re.search(r"^Feature Count: (\d+)$", block, re.M).group(1)),
            "srs": re.search(r"Layer SRS WKT:\n(.+?)\n[A-Za-z ]+:", block, re.S).group(1),
            "fields": re.findall(r"^(\w+): (?:Integer|Real|String)", block, re.M),
        }
    return layers


def test_geopackage_opens_in_ogrinfo(client, tmp_path):
    assert shutil.which("ogrinfo"), "GDAL's ogrinfo (Debian gdal-bin) is needed; .ci/run installs it"
    a = np.zeros((40, 40), dtype=np.uint8)
    a[2:8, 2:8] = 1
    a[20:30, 10:35] = 1
    a[12:14, 30:34] = 1  # 2 m²: under the default min_area of 4 m²
    a[30:40, 0:40] = 3  # road
    raster = class_raster(tmp_path / "scene.tif", a)
    result = vectorize(raster, tmp_path / "scene.gpkg", block_size=16, client=client, scene_id="scene-7")
    assert result.features == {"building": 2, "vehicle": 0, "road": 1}
    layers = ogrinfo_summary(result.output)
    assert list(layers) == ["building", "vehicle", "road"]  # no background, an empty vehicle layer
    assert {name: info["count"] for name, info in layers.items()} == result.features
    for info in layers.values():
        assert info["geometry"] == "Multi Polygon"
        assert 'ID["EPSG",32633]' in info["srs"]
        assert info["fields"] == ["class_id", "class_name", "area_m2", "perimeter_m", "source"]
    # GDAL keeps an R-tree spatial index for every layer.
    rtree = subprocess.run(
        ["ogrinfo", "-ro", "-q", str(result.output), "-sql",
         "SELECT table_name FROM gpkg_extensions WHERE extension_name = 'gpkg_rtree_index'"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert all(f"table_name (String) = {name}" in rtree for name in layers)
    df = read_layers(result.output)["building"]
    assert set(df.source) == {"scene-7"} and set(df.class_name) == {"building"} and set(df.class_id) == {1}
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize("suffix", [".geojson", ".fgb", ".parquet"])
def test_single_layer_formats(client, tmp_path, suffix):
    import geopandas as gpd
    import pyogrio

    a = np.zeros((20, 20), dtype=np.uint8)
    a[1:6, 1:12] = 1
    a[10:14, 10:14] = 2
    a[15:19, 2:6] = 1
    raster = class_raster(tmp_path / "scene.tif", a)
    result = vectorize(raster, tmp_path / f"out{suffix}", block_size=8, client=client, min_area=1)
    assert result.features == {"building": 2, "vehicle": 1, "road": 0}
    if suffix == ".parquet":
        df = gpd.read_parquet(result.output)
    else:
        assert [name for name, _ in pyogrio.list_layers(result.output)] == ["out"]
        df = gpd.read_file(result.output)
    assert len(df) == 3 and sorted(df.class_name) == ["building", "building", "vehicle"]
    assert set(df.geom_type) == {"MultiPolygon"} and df.is_valid.all()
    assert df.crs.to_epsg() == 32633
    assert no_temporaries(tmp_path)


def test_unknown_extension_is_an_error(client, tmp_path):
    raster = class_raster(tmp_path / "scene.tif", np.ones((4, 4)))
    with pytest.raises(ConfigError, match=r"unknown vector format '\.shp'"):
        vectorize(raster, tmp_path / "out.shp", client=client)
    assert not (tmp_path / "out.shp").exists() and no_temporaries(tmp_path)


def test_no_class_table_uses_the_ids_present(client, tmp_path):
    a = np.zeros((12, 12), dtype=np.uint8)
    a[2:6, 2:6] = 4
    a[8:10, 1:11] = 7
    a[0, 11] = 255
    raster = class_raster(tmp_path / "plain.tif", a, scheme=None)
    result = vectorize(raster, tmp_path / "plain.gpkg", block_size=5, client=client, **EXACT)
    assert result.features == {"class_0": 1, "class_4": 1, "class_7": 1}
    result = vectorize(raster, tmp_path / "seven.gpkg", classes="class_7,4", client=client, **EXACT)
    assert result.features == {"class_7": 1, "class_4": 1}
    with pytest.raises(InputError, match="has no class table"):
        vectorize(raster, tmp_path / "named.gpkg", classes="building", client=client)


# -- attributes ------------------------------------------------------------------------------------

def test_confidence_attributes(client, tmp_path):
    a = np.zeros((8, 8), dtype=np.uint8)
    a[1:3, 2:6] = 1  # 8 px across the seam at col 4
    a[5:7, 5:7] = 2  # 4 px inside one block
    conf = np.full((8, 8), 90, dtype=np.uint8)
    conf[1, 2:6] = [100, 200, 255, 50]
    conf[2, 2:6] = [10, 20, 30, 0]  # 0 is the confidence nodata: left out
    conf[5:7, 5:7] = [[128, 128], [64, 255]]
    raster = class_raster(tmp_path / "c.tif", a)
    conf_path = write_raster(tmp_path / "conf.tif", conf, nodata=0)
    result = vectorize(raster, tmp_path / "c.gpkg", confidence=conf_path, block_size=4, client=client, **EXACT)
    layers = read_layers(result.output)
    building, vehicle = layers["building"].iloc[0], layers["vehicle"].iloc[0]
    assert building.conf_mean == pytest.approx((100 + 200 + 255 + 50 + 10 + 20 + 30) / 7 / 255)
    assert building.conf_max == pytest.approx(1.0)
    assert vehicle.conf_mean == pytest.approx((128 + 128 + 64 + 255) / 4 / 255)
    assert vehicle.conf_max == pytest.approx(1.0)
    other = write_raster(tmp_path / "conf2.tif", np.full((8, 8), 200, np.uint8), nodata=0)
    result = vectorize(raster, tmp_path / "c2.gpkg", confidence=other, block_size=3, client=client, **EXACT)
    assert read_layers(result.output)["building"].conf_mean.iloc[0] == pytest.approx(200 / 255)


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
    for before, after, truth in zip(plain.geometry, square.geometry, sorted([rect, ell], key=lambda g: g.area)):
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


# -- bad input -------------------------------------------------------------------------------------

@pytest.fixture
def good_raster(tmp_path):
    a = np.zeros((8, 8), dtype=np.uint8)
    a[1:7, 1:7] = 1  # 9 m²
    return class_raster(tmp_path / "good.tif", a)


def bad_inputs(tmp_path: Path, good: Path) -> dict[str, tuple[dict, str]]:
    from rasterio.transform import from_origin

    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a GeoTIFF" * 10)
    rgb = write_raster(tmp_path / "rgb.tif", np.zeros((3, 8, 8), np.uint8))
    floats = write_raster(tmp_path / "float.tif", np.zeros((8, 8), np.float32))
    shifted = write_raster(
        tmp_path / "shifted.tif", np.zeros((8, 8), np.uint8), transform=from_origin(500001.0, 4000000.0, 0.5, 0.5)
    )
    smaller = write_raster(tmp_path / "smaller.tif", np.zeros((8, 7), np.uint8))
    return {
        "missing": (dict(raster=tmp_path / "nope.tif"), "does not exist"),
        "not a raster": (dict(raster=junk), "not a readable GeoTIFF"),
        "three bands": (dict(raster=rgb), "has 3 bands"),
        "float values": (dict(raster=floats), "integer class ids"),
        "unknown class": (
            dict(raster=good, classes="building,tree"), "unknown class 'tree'; known classes: background"
        ),
        "unknown class id": (dict(raster=good, classes=[9]), "class id 9 is not in the class table"),
        "confidence shifted": (dict(raster=good, confidence=shifted), "not on the class raster's grid"),
        "confidence smaller": (dict(raster=good, confidence=smaller), "not on the class raster's grid"),
        "confidence missing": (dict(raster=good, confidence=tmp_path / "nope_conf.tif"), "does not exist"),
        "negative area": (dict(raster=good, min_area=-1), "min_area must be a finite number >= 0"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "not a raster", "three bands", "float values", "unknown class", "unknown class id",
     "confidence shifted", "confidence smaller", "confidence missing", "negative area"],
)
def test_bad_input_fails_with_one_line_and_no_output(client, tmp_path, good_raster, case):
    kwargs, message = bad_inputs(tmp_path, good_raster)[case]
    out = tmp_path / "out.gpkg"
    with pytest.raises(InputError) as info:
        vectorize(kwargs.pop("raster"), out, client=client, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not out.exists() and no_temporaries(tmp_path)


def test_unreadable_block_fails_naming_it_and_leaves_nothing(client, tmp_path):
    """A GeoTIFF whose header is fine but whose later tiles were cut off: the error names the block."""
    a = np.random.default_rng(0).integers(0, 3, (256, 256)).astype(np.uint8)
    raster = class_raster(
        tmp_path / "cut.tif", a, scheme=None, tiled=True, blockxsize=64, blockysize=64, compress="deflate"
    )
    size = raster.stat().st_size
    with open(raster, "r+b") as f:
        f.truncate(size // 2)
    out = tmp_path / "cut.gpkg"
    message = r"cut.tif': reading rows \d+:\d+, cols \d+:\d+ failed .* corrupt or truncated"
    with pytest.raises(InputError, match=message):
        vectorize(raster, out, classes="1", block_size=64, client=client)
    assert not out.exists() and no_temporaries(tmp_path)


def test_refuses_to_overwrite(client, tmp_path, good_raster):
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="already exists"):
        vectorize(good_raster, out, client=client)
    assert out.read_bytes() == b"keep me"
    result = vectorize(good_raster, out, client=client, overwrite=True)
    assert result.features == {"building": 1, "vehicle": 0, "road": 0}
    assert no_temporaries(tmp_path)


# -- command line and the default cluster ----------------------------------------------------------

def test_cli_on_a_local_cluster(tmp_path):
    """Through the CLI without a client: vectorize starts (and stops) its own local cluster."""
    from click.testing import CliRunner

    from geoseg.cli import main

    a = np.zeros((20, 20), dtype=np.uint8)
    a[2:9, 3:15] = 1
    a[12:16, 12:16] = 2
    raster = class_raster(tmp_path / "scene.tif", a)
    out = tmp_path / "buildings.gpkg"
    runner = CliRunner()
    args = ["vectorize", str(raster), "--out", str(out), "--classes", "building", "--block-size", "8", "--workers", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{out}: 1 features (building: 1)" in result.output
    assert list(read_layers(out)) == ["building"]

    again = runner.invoke(main, ["vectorize", str(raster), "--out", str(out), "--classes", "building"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(main, ["vectorize", str(raster), "--out", str(tmp_path / "x.shp")])
    assert bad.exit_code == 2 and "unknown vector format" in bad.output
    missing = runner.invoke(main, ["-q", "vectorize", str(tmp_path / "none.tif"), "--out", str(tmp_path / "y.gpkg")])
    assert missing.exit_code == 1 and missing.output.strip().count("\n") == 0 and "does not exist" in missing.output
