"""geoseg.vectorize: classes without a class table, bad input, the command line on a local cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.rasters import write_raster
from support.vector_cases import EXACT, class_raster, no_temporaries, read_layers

from geoseg.errors import InputError
from geoseg.vectorization.api import vectorize

# rasterio silences this warning around its in-memory datasets with warnings.catch_warnings, which is not
# thread-safe: with two tasks in one process (the in-process test cluster) it can leak out spuriously.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_no_class_table_uses_the_ids_present(client, tmp_path):
    a = np.zeros((12, 12), dtype=np.uint8)
    a[2:6, 2:6] = 4
    a[8:10, 1:11] = 7
    a[0, 11] = 255
    raster = class_raster(tmp_path / "plain.tif", a, scheme=None)
    result = vectorize(raster, tmp_path / "plain.gpkg", block_size=5, client=client, **EXACT)
    assert result.features == {"class_0": 1, "class_4": 1, "class_7": 1}
    result = vectorize(raster, tmp_path / "seven.gpkg", classes="class_7,4", client=client, **EXACT)
    assert result.features == {"class_7": 1, "class_4": 1}
    with pytest.raises(InputError, match="has no class table"):
        vectorize(raster, tmp_path / "named.gpkg", classes="building", client=client)



# -- bad input -------------------------------------------------------------------------------------


def bad_inputs(tmp_path: Path, good: Path) -> dict[str, tuple[dict, str]]:
    from rasterio.transform import from_origin

    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a GeoTIFF" * 10)
    rgb = write_raster(tmp_path / "rgb.tif", np.zeros((3, 8, 8), np.uint8))
    floats = write_raster(tmp_path / "float.tif", np.zeros((8, 8), np.float32))
    shifted = write_raster(
        tmp_path / "shifted.tif", np.zeros((8, 8), np.uint8), transform=from_origin(500001.0, 4000000.0, 0.5, 0.5)
    )
    smaller = write_raster(tmp_path / "smaller.tif", np.zeros((8, 7), np.uint8))
    return {
        "missing": (dict(raster=tmp_path / "nope.tif"), "does not exist"),
        "not a raster": (dict(raster=junk), "not a readable GeoTIFF"),
        "three bands": (dict(raster=rgb), "has 3 bands"),
        "float values": (dict(raster=floats), "integer class ids"),
        "unknown class": (
            dict(raster=good, classes="building,tree"), "unknown class 'tree'; known classes: background"
        ),
        "unknown class id": (dict(raster=good, classes=[9]), "class id 9 is not in the class table"),
        "confidence shifted": (dict(raster=good, confidence=shifted), "not on the class raster's grid"),
        "confidence smaller": (dict(raster=good, confidence=smaller), "not on the class raster's grid"),
        "confidence missing": (dict(raster=good, confidence=tmp_path / "nope_conf.tif"), "does not exist"),
        "negative area": (dict(raster=good, min_area=-1), "min_area must be a finite number >= 0"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "not a raster", "three bands", "float values", "unknown class", "unknown class id",
     "confidence shifted", "confidence smaller", "confidence missing", "negative area"],
)
def test_bad_input_fails_with_one_line_and_no_output(client, tmp_path, good_raster, case):
    kwargs, message = bad_inputs(tmp_path, good_raster)[case]
    out = tmp_path / "out.gpkg"
    with pytest.raises(InputError) as info:
        vectorize(kwargs.pop("raster"), out, client=client, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not out.exists() and no_temporaries(tmp_path)



# -- command line and the default cluster ----------------------------------------------------------

def test_cli_on_a_local_cluster(tmp_path):
    """Through the CLI without a client: vectorize starts (and stops) its own local cluster."""
    from click.testing import CliRunner

    from geoseg.cli import main

    a = np.zeros((20, 20), dtype=np.uint8)
    a[2:9, 3:15] = 1
    a[12:16, 12:16] = 2
    raster = class_raster(tmp_path / "scene.tif", a)
    out = tmp_path / "buildings.gpkg"
    runner = CliRunner()
    args = ["vectorize", str(raster), "--out", str(out), "--classes", "building", "--block-size", "8", "--workers", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{out}: 1 features (building: 1)" in result.output
    assert list(read_layers(out)) == ["building"]

    again = runner.invoke(main, ["vectorize", str(raster), "--out", str(out), "--classes", "building"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(main, ["vectorize", str(raster), "--out", str(tmp_path / "x.shp")])
    assert bad.exit_code == 2 and "unknown vector format" in bad.output
    missing = runner.invoke(main, ["-q", "vectorize", str(tmp_path / "none.tif"), "--out", str(tmp_path / "y.gpkg")])
    assert missing.exit_code == 1 and missing.output.strip().count("\n") == 0 and "does not exist" in missing.output
