"""Class rasters and checks for the vectorize tests: the class table, pixel sizes, burning polygons back."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.atomic import TMP_MARKER
from geoseg.classes import CLASSES_TAG, ClassInfo, classes_to_json
from support.rasters import write_raster

SCHEME = (ClassInfo(0, "background"), ClassInfo(1, "building"), ClassInfo(2, "vehicle"), ClassInfo(3, "road"))
PIXEL = 0.5  # metres, the default grid of write_raster (EPSG:32633 at its central meridian)
UTM_AREA_SCALE = 0.9996**2  # UTM's areal scale on the central meridian: ground m² = grid m² / this
PIXEL_M2 = PIXEL * PIXEL / UTM_AREA_SCALE
EXACT = dict(min_area=0, simplify=0, fill_holes=0, rectangles=False)


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


def geodesic_mask_area(mask: np.ndarray, transform, crs) -> float:
    """Area of the ``True`` pixels on the WGS 84 ellipsoid: each row's pixel count times its geodesic pixel area."""
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    geod = pyproj.Geod(ellps="WGS84")
    total = 0.0
    for row, count in enumerate(mask.sum(axis=1)):
        if count:
            corners = [transform * (c, r) for c, r in ((0, row), (1, row), (1, row + 1), (0, row + 1))]
            lons, lats = to_lonlat.transform(*zip(*corners, strict=True))
            total += count * abs(geod.polygon_area_perimeter(lons, lats)[0])
    return total


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if TMP_MARKER in p.name]



SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

@st.composite
def class_arrays(draw):
    """Random class arrays, from pixel noise to blobs (cells of up to 3x3 pixels), with some nodata."""
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    cells = draw(arrays(np.uint8, (h, w), elements=st.sampled_from([0, 0, 1, 1, 1, 2, 255])))
    scale = draw(st.integers(1, 3))
    array = np.kron(cells, np.ones((scale, scale), dtype=np.uint8))
    return array[: draw(st.integers(1, array.shape[0])), : draw(st.integers(1, array.shape[1]))]


