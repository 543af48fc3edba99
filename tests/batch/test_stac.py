"""STAC output: items and the archive's collection are valid against every schema they declare (offline)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from support.rasters import write_raster
from support.stac_validation import validate_stac

from geoseg.batch.keys import file_sha256
from geoseg.batch.stac import (
    COG_TYPE,
    GPKG_TYPE,
    Asset,
    collection_id_for,
    item_bytes,
    scene_item,
    stac_datetime,
    write_collection,
)
from geoseg.classes import parse_classes
from geoseg.prediction.style import CONFIDENCE_SCALE

CLASSES = parse_classes(["background", "building", "tree cover"])
GRID = dict(crs_wkt="EPSG:32633", transform=(0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0), width=40, height=30)


def scene_folder(root, name="s1"):
    """A scene folder with a class COG, a confidence COG (scale 1/255) and a GeoPackage stand-in."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    folder = root / name
    folder.mkdir(parents=True)
    ids = np.random.default_rng(0).integers(0, 3, (30, 40)).astype(np.uint8)
    ids[:3] = 255
    write_raster(folder / "ids.tif", ids, nodata=255)
    rio_copy(folder / "ids.tif", folder / "landcover.tif", driver="COG")
    write_raster(folder / "conf.tif", np.full((30, 40), 200, np.uint8), nodata=0)
    with rasterio.open(folder / "conf.tif", "r+") as ds:
        ds.scales, ds.offsets = (CONFIDENCE_SCALE,), (0.0,)
    rio_copy(folder / "conf.tif", folder / "confidence.tif", driver="COG")
    (folder / "building.gpkg").write_bytes(b"not really a geopackage")
    for tmp in ("ids.tif", "conf.tif"):
        (folder / tmp).unlink()
    assets = {
        "landcover": Asset("./landcover.tif", COG_TYPE, "classes", ("data",), file_sha256(folder / "landcover.tif"),
                           (folder / "landcover.tif").stat().st_size),
        "confidence": Asset("./confidence.tif", COG_TYPE, "confidence", ("data",),
                            file_sha256(folder / "confidence.tif"), (folder / "confidence.tif").stat().st_size),
        "building_polygons": Asset("./building.gpkg", GPKG_TYPE, "buildings", ("data",), "ab" * 32, 23),
    }
    return folder, assets


def make_item(folder, assets, when=None, **kw):
    return scene_item(
        scene_id=folder.name, **GRID, when=when or stac_datetime({}, 1_600_000_000 * 10**9), assets=assets,
        properties={"geoseg:key": "k", "geoseg:steps": {"predict": {"tile_size": 64}}}, classes=CLASSES,
        folder=folder, collection_id=collection_id_for(folder.parent), derived_from="file:///data/s1.tif", **kw,
    )


def test_item_is_valid_against_every_declared_schema(tmp_path):
    folder, assets = scene_folder(tmp_path / "archive")
    item = make_item(folder, assets)
    checked = validate_stac(item)
    assert item["stac_version"] == "1.1.0"
    assert sorted(u.split("/")[3] for u in checked[1:]) == ["classification", "file", "projection", "raster"]
    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in item["stac_extensions"]
    props = item["properties"]
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [30, 40]
    assert props["proj:transform"] == list(GRID["transform"])
    assert props["datetime"] is None and props["start_datetime"] == "1970-01-01T00:00:00Z"

    landcover = item["assets"]["landcover"]
    band = landcover["raster:bands"][0]
    assert band["data_type"] == "uint8" and band["nodata"] == 255 and "scale" not in band
    assert band["statistics"]["minimum"] == 0 and band["statistics"]["maximum"] == 2
    classes = {c["value"]: c for c in landcover["classification:classes"]}
    assert classes[2]["name"] == "tree_cover" and classes[2]["title"] == "tree cover"
    assert classes[1]["color_hint"] == "E6194B" and classes[255]["nodata"] is True
    conf = item["assets"]["confidence"]["raster:bands"][0]
    assert conf["scale"] == pytest.approx(1 / 255) and conf["nodata"] == 0
    assert "raster:bands" not in item["assets"]["building_polygons"]  # not a raster
    assert item["assets"]["landcover"]["file:checksum"] == "1220" + file_sha256(folder / "landcover.tif")

    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links == {"collection": "../collection.json", "parent": "../collection.json",
                     "root": "../collection.json", "derived_from": "file:///data/s1.tif"}
    assert item["collection"] == "archive"
    # Nothing depends on when or where the item is built.
    assert item_bytes(make_item(folder, assets)) == item_bytes(item)


def test_crs_without_a_code_is_given_as_wkt2(tmp_path):
    from pyproj import CRS

    custom = CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=15.5 +k=0.9999 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m")
    folder, assets = scene_folder(tmp_path / "a")
    item = scene_item(scene_id="s", **{**GRID, "crs_wkt": custom.to_wkt()}, when={"datetime": "2020-01-01T00:00:00Z"},
                      assets={"b": assets["building_polygons"]}, properties={})
    validate_stac(item)
    assert item["properties"]["proj:code"] is None and "TRANSVERSE" in item["properties"]["proj:wkt2"].upper()
    assert [link["rel"] for link in item["links"]] == []


def test_footprint_is_counter_clockwise_in_wgs84(tmp_path):
    folder, assets = scene_folder(tmp_path / "a")
    ring = make_item(folder, assets)["geometry"]["coordinates"][0]
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))
    assert area > 0


def test_collection_links_items_and_is_valid(tmp_path):
    root = tmp_path / "archive"
    when = {"s1": {"datetime": "2020-05-18T10:22:01Z"},
            "s2": {"datetime": None, "start_datetime": "2019-01-01T00:00:00Z", "end_datetime": "2021-02-03T00:00:00Z"}}
    paths = []
    for name in ("s2", "s1"):
        folder, assets = scene_folder(root, name)
        (folder / "item.json").write_bytes(item_bytes(make_item(folder, assets, when=when[name])))
        paths.append(folder / "item.json")
    path = write_collection(root, paths)
    assert path == root / "collection.json"
    collection = json.loads(path.read_text())
    validate_stac(collection)
    assert collection["id"] == "archive" and collection["license"] == "other"
    links = [(link["rel"], link["href"]) for link in collection["links"]]
    assert links == [("self", path.resolve().as_uri()), ("root", "./collection.json"),
                     ("item", "./s1/item.json"), ("item", "./s2/item.json")]
    assert collection["extent"]["temporal"]["interval"] == [["2019-01-01T00:00:00Z", "2021-02-03T00:00:00Z"]]
    west, south, east, north = collection["extent"]["spatial"]["bbox"][0]
    assert 14.99 < west < east < 15.01 and 36.1 < south < north < 36.2
    for p in paths:  # every item's links resolve to this collection
        item = json.loads(p.read_text())
        validate_stac(item)
        href = next(x["href"] for x in item["links"] if x["rel"] == "collection")
        assert (p.parent / href).resolve() == path.resolve()

    # Rewriting with the same items leaves the file as it was (same bytes, same mtime).
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    write_collection(root, reversed(paths))
    assert path.stat().st_mtime_ns == stamp - 10**9
