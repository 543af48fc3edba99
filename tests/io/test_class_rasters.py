"""The one class-raster inspection and the class-id window reader."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geoseg.classes import CLASSES_TAG, NODATA, ClassInfo, classes_to_json
from geoseg.errors import InputError, LabelError
from geoseg.io.class_rasters import ClassRaster, inspect_class_raster, read_class_window
from geoseg.io.rasters import SceneInfo
from geoseg.tiling import PixelWindow

SCHEME = (ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "building", (230, 25, 75)))


def test_inspection_reads_the_class_table_and_colours(make_raster):
    path = make_raster("c.tif", np.zeros((4, 6), np.uint8), nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: classes_to_json(SCHEME)})
        ds.write_colormap(1, {0: (0, 0, 0, 255), 1: (230, 25, 75, 255)})
    info = inspect_class_raster(path)
    assert isinstance(info, ClassRaster) and isinstance(info, SceneInfo)
    assert (info.width, info.height, info.dtype, info.nodata) == (6, 4, "uint8", 255)
    assert info.scheme == SCHEME
    assert dict(info.colormap)[1] == (230, 25, 75)
    assert info.bounds == pytest.approx((500000.0, 3999998.0, 500003.0, 4000000.0))


def test_a_plain_integer_raster_has_no_table(make_raster):
    info = inspect_class_raster(make_raster("c.tif", np.zeros((4, 6), np.int16)))
    assert info.scheme is None and info.colormap == () and info.dtype == "int16"


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 4, 4), np.uint8), "truth '.*' has 2 bands; a class raster has one band"),
        (np.zeros((4, 4), np.float32), "truth '.*' holds float32 values; a class raster holds integer class ids"),
    ],
)
def test_not_a_class_raster(make_raster, array, message):
    path = make_raster("bad.tif", array)
    with pytest.raises(InputError, match=message):
        inspect_class_raster(path, what="truth")
    with pytest.raises(LabelError, match=message):  # the same check, raising the caller's error type
        inspect_class_raster(path, what="truth", error=LabelError)


def test_a_broken_class_table_is_an_error(make_raster):
    path = make_raster("c.tif", np.zeros((4, 4), np.uint8))
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: "{not json"})
    with pytest.raises(InputError, match="tag is not a valid class table"):
        inspect_class_raster(path)


def test_class_windows_are_nodata_outside_and_where_invalid(make_raster):
    data = np.arange(16, dtype=np.int16).reshape(4, 4)
    data[0, 0] = -1  # the nodata value
    path = make_raster("c.tif", data, nodata=-1)
    ids = read_class_window(str(path), PixelWindow(-1, -1, 3, 3))
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [[NODATA, NODATA, NODATA], [NODATA, NODATA, 1], [NODATA, 4, 5]])
    small = make_raster("u.tif", np.full((2, 2), 3, np.uint8))
    as_bytes = read_class_window(str(small), PixelWindow(1, 1, 2, 2), dtype=np.uint8)
    assert as_bytes.dtype == np.uint8
    np.testing.assert_array_equal(as_bytes, [[3, NODATA], [NODATA, NODATA]])
