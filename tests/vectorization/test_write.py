"""Writing features: GeoPackages GDAL reads, single-layer formats, refusing unknown formats and overwrites."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.vector_cases import class_raster, no_temporaries, read_layers

from geoseg.errors import ConfigError, OutputExistsError
from geoseg.vectorization.api import vectorize
from geoseg.vectorization.rectangles import SHAPE_FIELDS

# rasterio silences this warning around its in-memory datasets with warnings.catch_warnings, which is not
# thread-safe: with two tasks in one process (the in-process test cluster) it can leak out spuriously.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


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
    base = ["class_id", "class_name", "area_m2", "perimeter_m"]
    for name, info in layers.items():
        assert info["geometry"] == "Multi Polygon"
        assert 'ID["EPSG",32633]' in info["srs"]
        # vehicles also carry their oriented rectangle: orientation, length, width and fill
        shape = list(SHAPE_FIELDS) if name == "vehicle" else []
        assert info["fields"] == base + shape + ["source"]
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
    # GeoJSON is RFC 7946: WGS 84 longitude, latitude (the scene lies at 15 deg E, 36 deg N); the others keep the CRS.
    if suffix == ".geojson":
        assert df.crs.to_epsg() == 4326
        minx, miny, maxx, maxy = df.total_bounds
        assert 14.99 < minx < maxx < 15.01 and 36.1 < miny < maxy < 36.2
        text = result.output.read_text()
        assert '"crs"' not in text  # RFC 7946 has no crs member
        areas = df.to_crs(32633).area.sort_values().to_numpy()
        assert areas == pytest.approx([4, 4, 13.75], rel=1e-2)  # 16, 16, 55 px of 0.25 m²; 7 decimals ~ 1 cm
    else:
        assert df.crs.to_epsg() == 32633
    assert no_temporaries(tmp_path)


def test_geojson_keeps_the_raster_crs_when_asked(client, tmp_path):
    import geopandas as gpd
    from click.testing import CliRunner

    from geoseg.cli import main

    a = np.zeros((20, 20), dtype=np.uint8)
    a[1:6, 1:12] = 1
    raster = class_raster(tmp_path / "scene.tif", a)
    out = tmp_path / "utm.geojson"
    result = CliRunner().invoke(main, ["-q", "vectorize", str(raster), "--out", str(out), "--no-rfc7946",
                                       "--min-area", "1", "--workers", "1"])
    assert result.exit_code == 0, result.output
    df = gpd.read_file(out)
    assert df.crs.to_epsg() == 32633 and '"crs"' in out.read_text()
    assert df.area.sum() == pytest.approx(55 * 0.25, rel=1e-2)  # metres of the raster's own CRS


def test_unknown_extension_is_an_error(client, tmp_path):
    raster = class_raster(tmp_path / "scene.tif", np.ones((4, 4)))
    with pytest.raises(ConfigError, match=r"unknown vector format '\.shp'"):
        vectorize(raster, tmp_path / "out.shp", client=client)
    assert not (tmp_path / "out.shp").exists() and no_temporaries(tmp_path)



def test_refuses_to_overwrite(client, tmp_path, good_raster):
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="already exists"):
        vectorize(good_raster, out, client=client)
    assert out.read_bytes() == b"keep me"
    result = vectorize(good_raster, out, client=client, overwrite=True)
    assert result.features == {"building": 1, "vehicle": 0, "road": 0}
    assert no_temporaries(tmp_path)

