"""Objects cut by block seams come out whole: properties over random rasters, every kind of seam, a real mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.vector_cases import (
    EXACT,
    PIXEL,
    PIXEL_M2,
    SLOW_OK,
    burn,
    class_arrays,
    class_raster,
    components,
    geodesic_mask_area,
    read_layers,
)

from geoseg.vectorization.api import vectorize

# rasterio silences this warning around its in-memory datasets with warnings.catch_warnings, which is not
# thread-safe: with two tasks in one process (the in-process test cluster) it can leak out spuriously.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


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
    # Web Mercator at 0.3 deg N: areas are true on the WGS 84 ellipsoid (the sphere's cos² rule is 0.67 % off
    # here), within 1e-6 of the pixel count times each row's geodesic pixel area.
    assert df.area_m2.sum() == pytest.approx(geodesic_mask_area(mask == 1, transform, ds.crs), rel=1e-6)
    assert set(df.source) == {mask_path.name}

