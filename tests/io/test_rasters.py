"""The one window reader: masks, padding outside the raster, dtypes, and failures that name the window."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from geoseg.errors import InputError, LabelError
from geoseg.io.rasters import read_window
from geoseg.tiling import PixelWindow


def test_window_inside_reads_the_pixels_as_float32_all_valid(make_raster):
    data = np.arange(2 * 6 * 5, dtype=np.uint16).reshape(2, 6, 5)
    path = make_raster("s.tif", data)
    out, valid = read_window(str(path), PixelWindow(1, 2, 3, 2), (2, 1))
    assert out.dtype == np.float32 and out.shape == (2, 3, 2) and valid.all()
    np.testing.assert_array_equal(out, data[[1, 0], 1:4, 2:4])


def test_native_dtype_on_request(make_raster):
    data = np.arange(30, dtype=np.int16).reshape(6, 5) - 10
    path = make_raster("s.tif", data)
    (out,), valid = read_window(str(path), PixelWindow(0, 0, 6, 5), dtype=None)
    assert out.dtype == np.int16 and valid.all()
    np.testing.assert_array_equal(out, data)


def test_outside_the_raster_is_zero_and_invalid(make_raster):
    data = np.full((4, 4), 7, np.uint8)
    path = make_raster("s.tif", data)
    (out,), valid = read_window(str(path), PixelWindow(-1, 2, 4, 4), dtype=None)
    assert out.dtype == np.uint8
    expected_valid = np.zeros((4, 4), bool)
    expected_valid[1:, :2] = True  # rows 0..2 and cols 2..3 of the raster
    np.testing.assert_array_equal(valid, expected_valid)
    assert (out[valid] == 7).all() and (out[~valid] == 0).all()
    (far,), none = read_window(str(path), PixelWindow(10, 10, 2, 3))
    assert far.shape == (2, 3) and not none.any() and not far.any()


def test_nodata_in_all_bands_is_invalid_in_one_band_is_not(make_raster):
    data = np.ones((2, 3, 3), np.uint8)
    data[:, 0, 0] = 0  # nodata in every band: invalid (GDAL RFC 15)
    data[0, 1, 1] = 0  # nodata in one band only: still a pixel
    path = make_raster("s.tif", data, nodata=0)
    _, valid = read_window(str(path), PixelWindow(0, 0, 3, 3), (1, 2))
    assert valid.sum() == 8 and not valid[0, 0] and valid[1, 1]
    _, unmasked = read_window(str(path), PixelWindow(0, 0, 3, 3), (1, 2), use_mask=False)
    assert unmasked.all()


def test_internal_mask_and_alpha_band_are_masks(make_raster, tmp_path):
    path = make_raster("m.tif", np.full((3, 4, 4), 5, np.uint8))
    mask = np.full((4, 4), 255, np.uint8)
    mask[2:, :] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as ds:
        ds.write_mask(mask)
    _, valid = read_window(str(path), PixelWindow(0, 0, 4, 4), (1, 2, 3))
    np.testing.assert_array_equal(valid, mask > 0)

    rgba = np.full((4, 4, 4), 9, np.uint8)
    rgba[3] = 0
    rgba[3, :, :2] = 255
    alpha = make_raster("a.tif", rgba, photometric="RGB", alpha="YES")
    with rasterio.open(alpha) as ds:
        assert ds.colorinterp[3] == ColorInterp.alpha
    _, valid = read_window(str(alpha), PixelWindow(0, 0, 4, 4), (1, 2, 3))
    np.testing.assert_array_equal(valid, rgba[3] > 0)


def test_non_finite_values_are_invalid_and_read_as_zero(make_raster):
    data = np.ones((2, 3, 3), np.float32)
    data[0, 0, 0] = np.nan
    data[1, 2, 2] = np.inf
    path = make_raster("f.tif", data)
    out, valid = read_window(str(path), PixelWindow(0, 0, 3, 3), (1, 2))
    assert not valid[0, 0] and not valid[2, 2] and valid.sum() == 7
    assert np.isfinite(out).all() and out[0, 0, 0] == 0 and out[1, 2, 2] == 0


def test_an_open_dataset_is_read_as_given(make_raster):
    path = make_raster("s.tif", np.arange(16, dtype=np.uint8).reshape(4, 4))
    with rasterio.open(path) as ds:
        (out,), _ = read_window("ignored.tif", PixelWindow(1, 1, 2, 2), dataset=ds, dtype=None)
    np.testing.assert_array_equal(out, [[5, 6], [9, 10]])


def truncated(make_raster):
    data = np.random.default_rng(0).integers(0, 3, (256, 256)).astype(np.uint8)
    path = make_raster("cut.tif", data, tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    return path


def test_a_failed_read_names_the_file_and_window_in_one_line(make_raster):
    path = truncated(make_raster)
    message = r"cut.tif': reading rows 192:256, cols 192:256 failed .* corrupt or truncated"
    with pytest.raises(InputError, match=message) as failed:
        read_window(str(path), PixelWindow(192, 192, 64, 64))
    # Only GDAL's text travels: no GDAL exception as context, which a Dask client could not unpickle.
    assert failed.value.__context__ is None and failed.value.__cause__ is None
    with pytest.raises(LabelError, match=r"^labels '.*cut.tif': reading rows") as info:
        read_window(str(path), PixelWindow(192, 192, 64, 64), what="labels", error=LabelError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("uint8", 0), ("uint8", 255), ("int16", -5), ("uint16", 7), ("float32", -9999.0), ("float32", float("nan"))],
)
def test_the_nodata_mask_taken_from_the_pixels_equals_gdals_dataset_mask(make_raster, dtype, nodata):
    rng = np.random.default_rng(3)
    fill = np.nan if np.isnan(nodata) else nodata
    data = rng.integers(1, 4, (3, 40, 36)).astype(dtype)
    data[rng.random(data.shape) < 0.3] = fill  # some bands of some pixels
    data[:, 5:9, :] = fill  # every band: invalid
    path = make_raster("n.tif", data, nodata=nodata)
    window = PixelWindow(-3, 4, 30, 30)  # reaches outside the raster too
    _, valid = read_window(str(path), window, (1, 2, 3), dtype=None)
    with rasterio.open(path) as ds:
        expected = np.zeros((30, 30), bool)
        gdal = ds.dataset_mask(window=rasterio.windows.Window(4, 0, 30, 27)) > 0
        expected[3:, :] = gdal
        if np.issubdtype(np.dtype(dtype), np.floating):  # non-finite values are invalid as well
            expected[3:, :] &= np.isfinite(ds.read(window=rasterio.windows.Window(4, 0, 30, 27))).all(axis=0)
    np.testing.assert_array_equal(valid, expected)
    assert 0 < valid.sum() < valid.size


def test_a_band_subset_takes_gdals_mask_over_every_band(make_raster):
    data = np.ones((3, 4, 4), np.uint8)
    data[:2, 0, :] = 0  # nodata in the two bands read, not in the third: a valid pixel
    path = make_raster("b.tif", data, nodata=0)
    _, valid = read_window(str(path), PixelWindow(0, 0, 4, 4), (1, 2))
    assert valid.all()
