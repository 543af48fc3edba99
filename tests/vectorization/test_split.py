"""Splitting touching buildings in vectorize: one polygon per predicted body, the same whatever the block grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.rasters import write_raster

from geoseg.classes import CLASSES_TAG, PARTS_TAG, ClassInfo, PartScheme, classes_to_json, parts_to_json
from geoseg.errors import InputError
from geoseg.training.targets import part_targets
from geoseg.vectorization.api import vectorize
from geoseg.vectorization.split import parts_path_for, split_region

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SCHEME = PartScheme(of=1, border=2, contact=3)
DISPLAY = (ClassInfo(0, "background"), ClassInfo(1, "building", (230, 25, 75)))
NETWORK = (*DISPLAY, ClassInfo(2, "building_border"), ClassInfo(3, "building_contact"))
EXACT = dict(min_area=0, simplify=0, fill_holes=0, min_seed_area=0)
SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        yield c


def predicted(folder: Path, parts: np.ndarray, *, sidecar: bool = True, nodata: np.ndarray | None = None) -> Path:
    """What geoseg predict writes for a model with parts: the folded class map and, beside it, the part sidecar."""
    import rasterio

    parts = parts.astype(np.uint8)
    if nodata is not None:
        parts = np.where(nodata, 255, parts).astype(np.uint8)
    display = np.where((parts > 0) & (parts < 255), 1, parts).astype(np.uint8)
    raster = write_raster(folder / "landcover.tif", display, nodata=255)
    with rasterio.open(raster, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(DISPLAY), PARTS_TAG: parts_to_json([SCHEME])})
    if sidecar:
        side = write_raster(parts_path_for(raster), parts, nodata=255)
        with rasterio.open(side, "r+") as ds:
            ds.update_tags(**{CLASSES_TAG: classes_to_json(NETWORK), PARTS_TAG: parts_to_json([SCHEME])})
    return raster


def read_buildings(path: Path):
    import pyogrio

    return pyogrio.read_dataframe(path, layer="building")


def burn(geoms, shape) -> np.ndarray:
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    transform = from_origin(500000.0, 4000000.0, 0.5, 0.5)
    out = np.zeros(shape, dtype=np.int32)
    for g in geoms:  # counts overlaps: every pixel must be burnt exactly once
        out += rasterize([(g, 1)], out_shape=shape, transform=transform, fill=0, dtype="int32")
    return out


def houses(instances: np.ndarray) -> np.ndarray:
    return part_targets(instances, border_px=1, contact_px=1.5, body=1, border=2, contact=3)


def row_of_houses(n: int, width: int = 7, height: int = 8, gap: int = 0) -> np.ndarray:
    """``n`` rectangular houses side by side (touching when ``gap`` is 0), with a margin of background."""
    inst = np.zeros((height + 4, 2 + n * (width + gap) + 2), dtype=np.int32)
    for k in range(n):
        c0 = 2 + k * (width + gap)
        inst[2 : 2 + height, c0 : c0 + width] = k + 1
    return inst


# -- the pure function ---------------------------------------------------------------------------------------------

def test_split_region_cuts_at_the_contact_zone():
    parts = houses(row_of_houses(3))
    numbers = split_region(parts > 0, parts, SCHEME, 1)
    assert numbers.max() == 3
    # Each building is one of the houses: the watershed line falls where the labels put the shared walls.
    np.testing.assert_array_equal(numbers, row_of_houses(3))


def test_split_region_without_two_seeds_is_one_building():
    parts = houses(row_of_houses(1))
    np.testing.assert_array_equal(split_region(parts > 0, parts, SCHEME, 1), (parts > 0).astype(np.int32))
    two = houses(row_of_houses(2))
    # Seeds smaller than the minimum are no buildings: both bodies (5x6 px) are too small here.
    np.testing.assert_array_equal(split_region(two > 0, two, SCHEME, 31), (two > 0).astype(np.int32))
    assert split_region(two > 0, two, SCHEME, 30).max() == 2


# -- through vectorize ---------------------------------------------------------------------------------------------

def test_touching_houses_come_out_one_polygon_each(client, tmp_path):
    inst = row_of_houses(4)
    raster = predicted(tmp_path, houses(inst))
    split = vectorize(raster, tmp_path / "split.gpkg", client=client, block_size=9, **EXACT)
    whole = vectorize(raster, tmp_path / "whole.gpkg", client=client, block_size=9, split=False, **EXACT)
    assert split.features == {"building": 4} and whole.features == {"building": 1}
    df = read_buildings(split.output)
    assert df.geometry.is_valid.all()
    np.testing.assert_array_equal(burn(df.geometry, inst.shape), inst > 0)  # they tile the region, no overlap
    assert sorted(df.area_m2.round(6)) == pytest.approx([7 * 8 * 0.25 / 0.9996**2] * 4)


def test_confidence_of_split_buildings(client, tmp_path):
    inst = row_of_houses(2)
    raster = predicted(tmp_path, houses(inst))
    conf = np.where(inst == 1, 100, np.where(inst == 2, 200, 0)).astype(np.uint8)
    conf_path = write_raster(tmp_path / "confidence.tif", conf, nodata=0)
    df = read_buildings(vectorize(raster, tmp_path / "c.gpkg", confidence=conf_path, client=client, block_size=5,
                                  **EXACT).output)
    assert sorted(np.round(df.conf_mean * 255).astype(int).tolist()) == [100, 200]
    assert sorted(np.round(df.conf_max * 255).astype(int).tolist()) == [100, 200]


@st.composite
def layouts(draw):
    """Random rectangles (overlapping, touching or apart) as instances, some pixels nodata."""
    h, w = draw(st.integers(4, 30)), draw(st.integers(4, 30))
    inst = np.zeros((h, w), dtype=np.int32)
    for k in range(draw(st.integers(0, 7))):
        r0, c0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        inst[r0 : r0 + draw(st.integers(1, 12)), c0 : c0 + draw(st.integers(1, 12))] = k + 1
    nodata = np.zeros((h, w), dtype=bool)
    if draw(st.booleans()):
        nodata[draw(st.integers(0, h - 1)), :] = True
    return inst, nodata, draw(st.integers(1, 9))


@settings(max_examples=25, deadline=None, suppress_health_check=SLOW_OK)
@given(layout=layouts())
def test_block_grid_does_not_change_the_split(client, tmp_path_factory, layout):
    """Any block size gives the same buildings as the whole raster in one block, with or without filters."""
    import shapely

    inst, nodata, block_size = layout
    folder = tmp_path_factory.mktemp("split")
    raster = predicted(folder, houses(inst), nodata=nodata)
    for opts in (EXACT, dict(min_area=0.6, simplify=0.6, fill_holes=0.3, min_seed_area=0.5)):
        small = read_buildings(vectorize(raster, folder / "small.gpkg", block_size=block_size, client=client,
                                         overwrite=True, **opts).output)
        whole = read_buildings(vectorize(raster, folder / "whole.gpkg", block_size=4096, client=client,
                                         overwrite=True, **opts).output)
        a = sorted(shapely.to_wkb(shapely.normalize(small.geometry.values)))
        b = sorted(shapely.to_wkb(shapely.normalize(whole.geometry.values)))
        assert a == b
        assert small.geometry.is_valid.all()
        if opts is EXACT:  # split buildings tile the building pixels exactly
            mask = (inst > 0) & ~nodata
            np.testing.assert_array_equal(burn(small.geometry, inst.shape), mask.astype(np.int32))


# -- inputs --------------------------------------------------------------------------------------------------------

def test_missing_sidecar_is_a_clear_error_and_no_split_still_works(client, tmp_path):
    raster = predicted(tmp_path, houses(row_of_houses(2)), sidecar=False)
    with pytest.raises(InputError, match=r"part sidecar .*landcover\.parts\.tif.* is missing.*--no-split"):
        vectorize(raster, tmp_path / "a.gpkg", client=client)
    assert not (tmp_path / "a.gpkg").exists()
    assert vectorize(raster, tmp_path / "b.gpkg", client=client, split=False, **EXACT).features == {"building": 1}


def test_sidecar_given_explicitly_and_checked(client, tmp_path):
    import shutil

    folder = tmp_path / "pred"
    folder.mkdir()
    raster = predicted(folder, houses(row_of_houses(2)))
    moved = tmp_path / "elsewhere.tif"
    shutil.move(parts_path_for(raster), moved)
    result = vectorize(raster, tmp_path / "a.gpkg", client=client, parts=moved, **EXACT)
    assert result.features == {"building": 2}
    wrong = write_raster(tmp_path / "wrong.tif", np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="not a one-band uint8 raster on the grid"):
        vectorize(raster, tmp_path / "b.gpkg", client=client, parts=wrong)


def test_plain_class_maps_are_not_split(client, tmp_path):
    """A raster without a part table (any older model) vectorises exactly as before, split on or off."""
    array = (row_of_houses(3) > 0).astype(np.uint8)
    raster = write_raster(tmp_path / "plain.tif", array, nodata=255)
    assert vectorize(raster, tmp_path / "a.gpkg", client=client, classes=["1"], **EXACT).features == {"class_1": 1}
    with pytest.raises(InputError, match="no part table"):
        vectorize(raster, tmp_path / "b.gpkg", client=client, classes=["1"], parts=raster)


def test_cli_no_split(tmp_path):
    import subprocess
    import sys

    raster = predicted(tmp_path, houses(row_of_houses(3)))
    counts = {}
    for flag in ("--split", "--no-split"):
        out = tmp_path / f"{flag}.gpkg"
        proc = subprocess.run([sys.executable, "-m", "geoseg", "-q", "vectorize", str(raster), "--out", str(out),
                               "--min-area", "0", "--workers", "1", flag], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        counts[flag] = len(read_buildings(out))
    assert counts == {"--split": 3, "--no-split": 1}
