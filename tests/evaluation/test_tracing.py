"""Truth polygons traced from truth rasters window by window, by the code that vectorises predictions."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import shapes as raster_shapes
from rasterio.transform import from_origin
from shapely.geometry import shape
from support.evaluation_cases import CRS_UTM, ORIGIN

from geoseg.classes import ClassInfo, classes_to_json
from geoseg.evaluation.tracing import TracedTruth
from geoseg.io.rasters import SceneInfo
from geoseg.tiling import PixelWindow, block_windows


def grid(height: int, width: int, res: float) -> SceneInfo:
    crs = rasterio.crs.CRS.from_string(CRS_UTM).to_wkt()
    transform = tuple(from_origin(*ORIGIN, res, res))[:6]
    return SceneInfo("truth.tif", width, height, 1, "uint8", crs, transform, (1,), 255, res)


def windows(height: int, width: int, rows: int, cols: int) -> list[PixelWindow]:
    """Row-major windows of ``rows`` x ``cols`` pixels (ragged at the right and bottom)."""
    return [
        PixelWindow(r, c, min(rows, height - r), min(cols, width - c))
        for r in range(0, height, rows)
        for c in range(0, width, cols)
    ]


def trace(data: np.ndarray, class_ids: list[int], wins: list[PixelWindow], res: float = 2.0) -> TracedTruth:
    traced = TracedTruth(class_ids, grid(*data.shape, res), wins)
    for w in wins:
        traced.add(w, data[w.row_off : w.row_end, w.col_off : w.col_end])
    return traced


def test_traced_truth_equals_whole_raster_shapes():
    rng = np.random.default_rng(3)
    data = (rng.random((37, 29)) < 0.45).astype(np.uint8) + 1
    transform = from_origin(*ORIGIN, 2.0, 2.0)
    whole = sorted(
        round(shape(g).area, 6) for g, v in raster_shapes(data, connectivity=4, transform=transform) if v == 2
    )
    for step in (5, 8, 37):
        polys = trace(data, [2], windows(37, 29, step, 7)).polygons(2)
        assert sorted(round(p.area, 6) for p in polys) == whole
        # One valid feature per 4-connected object, a single-part MultiPolygon as geoseg vectorize writes.
        assert all(p.is_valid and p.geom_type == "MultiPolygon" and len(p.geoms) == 1 for p in polys)


def test_windows_must_come_in_row_major_order():
    data = np.ones((4, 4), np.uint8)
    wins = windows(4, 4, 2, 2)
    traced = TracedTruth([1], grid(4, 4, 1.0), wins)
    with pytest.raises(RuntimeError, match="block 1 arrived, block 0 was expected"):
        traced.add(wins[1], data[:2, 2:])


def test_truth_is_traced_exactly_as_vectorize_traces_a_prediction(tmp_path):
    """The same class raster through vectorize (blocks of 8) and through evaluation's tracing (other windows)."""
    import pyogrio
    from distributed import Client
    from support.rasters import write_raster

    from geoseg.vectorization.api import vectorize

    rng = np.random.default_rng(11)
    cells = rng.choice(np.array([0, 1, 1, 2], np.uint8), size=(9, 7))
    data = np.kron(cells, np.ones((3, 3), np.uint8))[:25, :19]
    data[rng.random(data.shape) < 0.05] = 1  # speckle: single pixels and diagonal contacts
    transform = from_origin(*ORIGIN, 2.0, 2.0)
    path = write_raster(tmp_path / "classes.tif", data, crs=CRS_UTM, transform=transform, nodata=255)
    scheme = [ClassInfo(0, "background"), ClassInfo(1, "building"), ClassInfo(2, "water")]
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(GEOSEG_CLASSES=classes_to_json(scheme))
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        vectorize(path, tmp_path / "v.gpkg", block_size=8, min_area=0, simplify=0, fill_holes=0, client=client)
    traced = trace(data, [1, 2], [w for w in block_windows(25, 19, 6)])
    for class_id, name in ((1, "building"), (2, "water")):
        written = pyogrio.read_dataframe(tmp_path / "v.gpkg", layer=name).geometry.values
        got = np.asarray(traced.polygons(class_id), dtype=object)
        assert len(got) == len(written) > 0
        assert sorted(shapely.to_wkt(shapely.normalize(got), rounding_precision=6)) == sorted(
            shapely.to_wkt(shapely.normalize(written), rounding_precision=6)
        )
