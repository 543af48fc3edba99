"""Block tasks: confidence under each object, and a block that cannot be read."""

from __future__ import annotations

import numpy as np
import pytest
from support.rasters import write_raster
from support.vector_cases import EXACT, class_raster, no_temporaries, read_layers

from geoseg.errors import InputError
from geoseg.vectorization.api import vectorize

# rasterio silences this warning around its in-memory datasets with warnings.catch_warnings, which is not
# thread-safe: with two tasks in one process (the in-process test cluster) it can leak out spuriously.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


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



def test_trace_block_is_vectorize_block_without_the_read(tmp_path):
    """The array half of a block task gives what the task gives when it reads the window itself."""
    import rasterio
    import shapely

    from geoseg.io.rasters import read_window
    from geoseg.measure import metric_frame
    from geoseg.tiling import PixelWindow
    from geoseg.vectorization.finish import PolygonOptions
    from geoseg.vectorization.tasks import VectorizeJob, trace_block, vectorize_block

    a = np.random.default_rng(5).choice(np.array([0, 1, 2, 255], np.uint8), size=(20, 20))
    raster = class_raster(tmp_path / "t.tif", a)
    with rasterio.open(raster) as ds:
        transform, crs, bounds = tuple(ds.transform)[:6], ds.crs.to_wkt(), tuple(ds.bounds)
    job = VectorizeJob(str(raster), (1, 2), 20, 20, transform, metric_frame(crs, bounds), PolygonOptions(**EXACT))
    window = PixelWindow(8, 4, 8, 12)  # interior on every side
    read = vectorize_block(job, window, 5)
    (data,), valid = read_window(str(raster), window, dtype=None)
    traced = trace_block(job, window, 5, data, valid)
    assert len(read.features) > 0 and len(read.pieces) > 0
    assert list(shapely.from_wkb(read.features.wkb)) == list(shapely.from_wkb(traced.features.wkb))
    assert list(read.pieces.wkb) == list(traced.pieces.wkb)
    assert read.edges.keys() == traced.edges.keys() == {"top", "bottom", "left", "right"}
    for side in read.edges:
        np.testing.assert_array_equal(read.edges[side], traced.edges[side])
