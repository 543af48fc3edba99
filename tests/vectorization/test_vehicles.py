"""Vehicles in vectorize: one oriented rectangle per vehicle, touching ones split, the same whatever the block grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.rasters import write_raster

from geoseg.classes import CLASSES_TAG, PARTS_TAG, ClassInfo, PartScheme, classes_to_json, parts_to_json
from geoseg.training.targets import part_targets
from geoseg.vectorization.api import vectorize
from geoseg.vectorization.rectangles import SHAPE_FIELDS, oriented_rectangle
from geoseg.vectorization.split import parts_path_for

PIXEL = 0.1  # metres; EPSG:32633 on its central meridian
SCHEME = PartScheme(of=2, border=5, contact=6)
DISPLAY = (ClassInfo(0, "background"), ClassInfo(1, "building", (230, 25, 75)), ClassInfo(2, "vehicle", (0, 200, 255)))
NETWORK = (*DISPLAY, ClassInfo(5, "vehicle_border"), ClassInfo(6, "vehicle_contact"))
EXACT = dict(min_area=0, simplify=0, fill_holes=0, min_seed_area=0)
SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        yield c


def transform():
    from rasterio.transform import from_origin

    return from_origin(500000.0, 4000000.0, PIXEL, PIXEL)


def car(cx: float, cy: float, angle: float, length: float = 4.5, width: float = 1.8):
    """A car footprint in pixel units of the test grid (x = column, y = row), ``angle`` degrees from the x axis."""
    import shapely
    from shapely import affinity

    box = shapely.box(-length / PIXEL / 2, -width / PIXEL / 2, length / PIXEL / 2, width / PIXEL / 2)
    return affinity.translate(affinity.rotate(box, angle), cx, cy)


def burn_instances(cars, shape) -> np.ndarray:
    from rasterio.features import rasterize

    if not cars:
        return np.zeros(shape, dtype=np.int32)
    return rasterize(((g, i + 1) for i, g in enumerate(cars)), out_shape=shape, fill=0, dtype="int32")


def predicted(folder: Path, instances: np.ndarray, *, building: np.ndarray | None = None) -> Path:
    """What geoseg predict writes for a model with vehicle parts: the folded map and the part sidecar."""
    import rasterio

    parts = part_targets(instances, border_px=0.3 / PIXEL, contact_px=0.45 / PIXEL, body=2, border=5, contact=6)
    if building is not None:
        parts = np.where((parts == 0) & building, 1, parts).astype(np.uint8)
    display = np.where(np.isin(parts, (5, 6)), 2, parts).astype(np.uint8)
    raster = write_raster(folder / "landcover.tif", display, nodata=255, transform=transform())
    with rasterio.open(raster, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(DISPLAY), PARTS_TAG: parts_to_json([SCHEME])})
    side = write_raster(parts_path_for(raster), parts.astype(np.uint8), nodata=255, transform=transform())
    with rasterio.open(side, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(NETWORK), PARTS_TAG: parts_to_json([SCHEME])})
    return raster


def read_vehicles(path: Path):
    import pyogrio

    return pyogrio.read_dataframe(path, layer="vehicle")


def test_oriented_rectangle_of_a_pixel_staircase():
    import shapely
    from rasterio.features import shapes

    inst = burn_instances([car(60, 60, 30)], (120, 120))
    (geom, _), *_ = [s for s in shapes(inst.astype(np.uint8), mask=inst > 0)]
    polygon = shapely.geometry.shape(geom)
    shape, azimuth, long, short, fill = oriented_rectangle(polygon)
    assert shape.geom_type == "Polygon" and len(shape.exterior.coords) == 5
    assert fill > 0.85
    assert shape.area == pytest.approx(polygon.area)
    assert long * PIXEL == pytest.approx(4.5, abs=0.25)
    assert short * PIXEL == pytest.approx(1.8, abs=0.25)
    # rows grow downwards here, so 30 degrees from the x axis is 90 + 30 clockwise from the (downward) y axis
    assert min(abs(azimuth - 60), abs(azimuth - 120)) < 2.0


def test_a_polygon_that_does_not_fill_its_rectangle_keeps_its_outline():
    import shapely

    ell = shapely.Polygon([(0, 0), (40, 0), (40, 10), (10, 10), (10, 40), (0, 40)])
    shape, azimuth, long, short, fill = oriented_rectangle(ell)
    assert shape is ell
    assert fill < 0.75
    assert long == pytest.approx(40) and short == pytest.approx(40)


def test_parked_cars_come_out_one_rectangle_each(client, tmp_path):
    """Five cars side by side, touching, with a building beside them: five rectangles with their orientation."""
    cars = [car(40 + 19 * k, 60, 90) for k in range(5)]  # 1.8 m wide at a 1.9 m pitch: neighbours nearly touch
    inst = burn_instances(cars, (120, 160))
    building = np.zeros(inst.shape, dtype=bool)
    building[5:25, 10:150] = True
    raster = predicted(tmp_path, inst, building=building)
    result = vectorize(raster, tmp_path / "v.gpkg", client=client, classes=["building", "vehicle"])
    vehicles = read_vehicles(result.output)
    assert len(vehicles) == 5
    for name in SHAPE_FIELDS:
        assert name in vehicles.columns
    np.testing.assert_allclose(vehicles["orientation_deg"], 0.0, atol=1.0)  # long axis along the rows: north-south
    np.testing.assert_allclose(vehicles["length_m"], 4.5, atol=0.3)
    assert (vehicles["width_m"] < 2.0).all() and (vehicles["width_m"] > 1.4).all()
    np.testing.assert_allclose(vehicles["area_m2"], vehicles["length_m"] * vehicles["width_m"], rtol=0.02)
    assert vehicles.geometry.is_valid.all()
    import pyogrio

    building_layer = pyogrio.read_dataframe(result.output, layer="building")
    assert "orientation_deg" not in building_layer.columns  # only the vehicle layer carries the shape columns


def test_single_layer_output_has_shape_columns_for_vehicles_only(client, tmp_path):
    import pyogrio

    inst = burn_instances([car(60, 60, 10)], (120, 120))
    building = np.zeros(inst.shape, dtype=bool)
    building[90:110, 10:110] = True
    raster = predicted(tmp_path, inst, building=building)
    out = vectorize(raster, tmp_path / "v.geojson", client=client, classes=["building", "vehicle"]).output
    frame = pyogrio.read_dataframe(out)
    by_class = dict(zip(frame["class_name"], frame["orientation_deg"], strict=True))
    assert np.isnan(by_class["building"]) and np.isfinite(by_class["vehicle"])


@st.composite
def parking_lots(draw):
    """Cars on a small grid, some touching, at random angles; and a block size."""
    n = draw(st.integers(1, 6))
    cars = []
    for _ in range(n):
        cars.append(car(draw(st.floats(15, 105)), draw(st.floats(15, 105)), draw(st.floats(0, 180)),
                        length=draw(st.floats(3.0, 5.5)), width=draw(st.floats(1.4, 2.2))))
    return burn_instances(cars, (120, 120)), draw(st.integers(7, 70))


@settings(max_examples=20, deadline=None, suppress_health_check=SLOW_OK)
@given(lot=parking_lots())
def test_block_grid_does_not_change_the_vehicles(client, tmp_path_factory, lot):
    """Seam safety: any block size gives the same vehicle rectangles and attributes as one block."""
    import shapely

    inst, block_size = lot
    folder = tmp_path_factory.mktemp("lot")
    raster = predicted(folder, inst)
    for opts in (EXACT, dict(min_area=1.0, simplify=0.2, fill_holes=0.3, min_seed_area=0.5)):
        small = read_vehicles(vectorize(raster, folder / "small.gpkg", block_size=block_size, client=client,
                                        overwrite=True, **opts).output)
        whole = read_vehicles(vectorize(raster, folder / "whole.gpkg", block_size=4096, client=client,
                                        overwrite=True, **opts).output)
        assert len(small) == len(whole)
        key = lambda f: sorted(zip(shapely.to_wkb(shapely.normalize(f.geometry.values)),  # noqa: E731
                                   f["orientation_deg"].round(9), f["area_m2"].round(9), strict=True))
        assert key(small) == key(whole)
        assert small.geometry.is_valid.all()
