"""What GIS software sees: a QGIS style beside the class COG, confidence scaled to 0..1 with average overviews."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support.nets import make_model
from support.rasters import write_raster

import geoseg
from geoseg.classes import parse_classes
from geoseg.prediction.style import CONFIDENCE_SCALE, class_style, confidence_style, qml_path, qml_text
from geoseg.prediction.write import CogWriter
from geoseg.tiling import PixelWindow

CLASSES = parse_classes([{"id": 0, "name": "background", "color": [0, 0, 0]},
                         {"id": 3, "name": "tree cover", "color": [0, 128, 0]}])


def test_qml_is_a_paletted_style_with_names_colours_and_clear_nodata():
    root = ET.fromstring(qml_text(CLASSES).split("\n", 1)[1])
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [(e.get("value"), e.get("label"), e.get("color"), e.get("alpha"))
               for e in renderer.findall("colorPalette/paletteEntry")]
    assert entries == [("0", "background", "#000000", "255"), ("3", "tree cover", "#008000", "255")]
    clear = renderer.find("rasterTransparency/singleValuePixelList/pixelListEntry")
    assert clear is not None and (clear.get("min"), clear.get("max"), clear.get("percentTransparent")) == \
        ("255", "255", "100")


def write_cog(path, data, **meta):
    writer = CogWriter(path, width=data.shape[1], height=data.shape[0], crs="EPSG:32633",
                       transform=from_origin(500000, 4000000, 1, 1), **meta)
    writer.write(PixelWindow(0, 0, *data.shape), data)
    return writer.commit()


def test_class_cog_gets_its_style_and_nearest_overviews(tmp_path):
    data = np.tile(np.array([[0, 3], [3, 3]], np.uint8), (512, 512))
    out = write_cog(tmp_path / "landcover.tif", data, nodata=255, style=class_style(CLASSES))
    assert qml_path(out) == tmp_path / "landcover.qml" and qml_path(out).read_text() == qml_text(CLASSES)
    with rasterio.open(out, overview_level=0) as ovr:
        assert set(np.unique(ovr.read(1)).tolist()) <= {0, 3}  # a class, never an average of ids


def test_confidence_cog_is_scaled_to_probability_with_average_overviews(tmp_path):
    data = np.tile(np.array([[100, 200], [100, 200]], np.uint8), (512, 512))
    out = write_cog(tmp_path / "confidence.tif", data, nodata=0, style=confidence_style())
    assert not qml_path(out).exists()
    with rasterio.open(out) as ds:
        assert ds.scales == (pytest.approx(CONFIDENCE_SCALE),) and ds.offsets == (0.0,)
        assert ds.overviews(1)
    with rasterio.open(out, overview_level=0) as ovr:
        assert np.unique(ovr.read(1)).tolist() == [150]


def test_predict_writes_the_style_and_the_scale(tmp_path):
    from distributed import Client

    scene = write_raster(tmp_path / "s.tif", np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8))
    model = make_model(tile_size=32)
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        geoseg.predict(scene, model, tmp_path / "lc.tif", confidence=tmp_path / "conf.tif", overlap=8, client=client)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.tif", "lc.qml", "lc.tif", "s.tif"]
    labels = [e.get("label") for e in ET.fromstring((tmp_path / "lc.qml").read_text().split("\n", 1)[1]).iter(
        "paletteEntry")]
    assert labels == [c.name for c in model.card.classes]
    with rasterio.open(tmp_path / "conf.tif") as ds:
        assert ds.scales == (pytest.approx(1 / 255),)


@pytest.mark.parametrize(("height", "width"), [(1025, 1537), (1100, 3000)])
def test_class_overviews_filled_piece_by_piece_take_every_other_pixel(tmp_path, height, width):
    """Pieces written at odd and even offsets fill the factor-2 overview as they come: it holds pixels (2i, 2j)
    of the class map (with an odd side, GDAL's own overview would take neighbouring pixels, so this is the file
    geoseg filled), the smaller levels are built from it, and nothing is left beside the COG."""
    from geoseg.prediction.write import CogWriter

    data = np.random.default_rng(width).integers(0, 4, (height, width)).astype(np.uint8)
    writer = CogWriter(tmp_path / "lc.tif", width=width, height=height, crs="EPSG:32633",
                       transform=from_origin(500000, 4000000, 1, 1), nodata=255, style=class_style(CLASSES))
    rows, cols = [0, 333, 334, 700, height], [0, 511, 1001, width]
    for r0, r1 in itertools.pairwise(rows):
        for c0, c1 in itertools.pairwise(cols):
            writer.write(PixelWindow(r0, c0, r1 - r0, c1 - c0), data[r0:r1, c0:c1])
    out = writer.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lc.qml", "lc.tif"]
    with rasterio.open(out) as ds:
        factors = ds.overviews(1)
        assert factors and np.array_equal(ds.read(1), data)
    with rasterio.open(out, overview_level=0) as ovr:
        assert np.array_equal(ovr.read(1), data[::2, ::2])
    for level, f in enumerate(factors):
        with rasterio.open(out, overview_level=level) as ovr:
            assert ovr.shape == (-(-height // f), -(-width // f))


@pytest.mark.parametrize(("height", "width"), [(1025, 513), (1100, 3000), (512, 512), (2048, 2048)])
def test_the_cog_has_the_overview_levels_gdals_cog_driver_chooses(tmp_path, height, width):
    """The overviews are built into the staging raster before the COG copy; the levels are GDAL's own choice,
    factor 2 shows the same pixels as GDAL's (for even sides: with an odd side GDAL's two overview builders pick
    neighbouring source pixels), and the result is a valid COG."""
    from rasterio.shutil import copy
    from rio_cogeo.cogeo import cog_validate

    from geoseg.prediction.write import COG_OPTIONS

    data = np.random.default_rng(height).integers(0, 4, (height, width)).astype(np.uint8)
    out = write_cog(tmp_path / "ours.tif", data, nodata=255, style=class_style(CLASSES))
    plain = write_raster(tmp_path / "plain.tif", data, nodata=255, crs="EPSG:32633",
                         transform=from_origin(500000, 4000000, 1, 1))
    copy(plain, tmp_path / "gdal.tif", driver="COG", **COG_OPTIONS)
    with rasterio.open(out) as ours, rasterio.open(tmp_path / "gdal.tif") as gdal:
        assert ours.overviews(1) == gdal.overviews(1)
        assert np.array_equal(ours.read(1), data)
    if (height > 512 or width > 512) and height % 2 == 0 and width % 2 == 0:
        with rasterio.open(out, overview_level=0) as a, rasterio.open(tmp_path / "gdal.tif", overview_level=0) as b:
            assert a.shape == b.shape and np.array_equal(a.read(1), b.read(1))
    valid, errors, _ = cog_validate(str(out), strict=True)
    assert valid, errors
