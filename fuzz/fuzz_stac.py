"""Fuzz reading a local STAC catalog as batch input: a catalog file and one item file, both fuzzed JSON.

Every input must end in a :class:`~geoseg.errors.ConfigError` or a list of
scenes; hrefs may point anywhere (``/etc/passwd``, ``../..``, URLs), so the
walk must stay inside the catalog's folder and never hang.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import _harness  # noqa: F401  (puts tests/ on the path)

try:
    import atheris

    with atheris.instrument_imports(include=["geoseg"]):
        from geoseg.batch.stac_input import read_stac_catalog
        from geoseg.errors import ConfigError
except ImportError:
    from geoseg.batch.stac_input import read_stac_catalog
    from geoseg.errors import ConfigError

_ROOT = Path(tempfile.mkdtemp(prefix="geoseg-fuzz-stac-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))


def check_one(data: bytes) -> None:
    catalog, _, item = data.partition(b"\0\0")
    folder = _ROOT / "archive"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "items").mkdir(parents=True)
    (folder / "catalog.json").write_bytes(catalog)
    (folder / "items" / "a.json").write_bytes(item)
    try:
        scenes = read_stac_catalog(folder / "catalog.json")
    except ConfigError:
        return
    for scene in scenes:  # every scene reads a file inside the archive, or fails with a reason
        assert scene.error is not None or Path(scene.href).resolve().is_relative_to(folder.resolve()), scene


def seeds() -> Iterator[bytes]:
    import json

    item = {"type": "Feature", "stac_version": "1.0.0", "id": "a", "geometry": None,
            "properties": {"datetime": "2021-01-01T00:00:00Z"}, "links": [],
            "assets": {"image": {"href": "../img/a.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}}}
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "c", "description": "d",
               "links": [{"rel": "item", "href": "./items/a.json"}, {"rel": "child", "href": "./catalog.json"},
                         {"rel": "child", "href": "https://example.com/x.json"}]}
    yield json.dumps(catalog).encode() + b"\0\0" + json.dumps(item).encode()
    collection = {"type": "FeatureCollection", "features": [item, {**item, "id": "b", "assets": {}}]}
    yield json.dumps(collection).encode() + b"\0\0{}"
    yield json.dumps(item).encode() + b"\0\0"
    remote = {**item, "assets": {"image": {"href": "/vsicurl/http://127.0.0.1:9/x.tif", "type": "image/tiff"}}}
    yield json.dumps(catalog).encode() + b"\0\0" + json.dumps(remote).encode()


if __name__ == "__main__":
    _harness.main(check_one, seeds)
    sys.exit(0)
