"""Fuzz the class table of a class raster (the ``GEOSEG_CLASSES`` tag, JSON) and picking classes from it.

Every input must end in a geoseg error or a class scheme.  The text after the
first line break, if any, is a ``--classes`` value resolved against the scheme.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import _harness  # noqa: F401  (puts tests/ on the path)

try:
    import atheris

    with atheris.instrument_imports(include=["geoseg"]):
        from geoseg.classes import classes_from_json, resolve_classes
        from geoseg.errors import GeoSegError
except ImportError:
    from geoseg.classes import classes_from_json, resolve_classes
    from geoseg.errors import GeoSegError


def check_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    table, _, wanted = text.partition("\n")
    try:
        scheme = classes_from_json(table)
        if wanted:
            resolve_classes(scheme, wanted.split(","))
    except GeoSegError:
        pass


def seeds() -> Iterator[bytes]:
    yield (b'[{"id": 0, "name": "background", "color": [0, 0, 0]}, '
           b'{"id": 1, "name": "building", "color": [230, 25, 75]}]')
    yield b'[{"id": 0, "name": "background"}, {"id": 7, "name": "water"}]\nwater,7,Background'
    yield b'["background", "building", "road"]\nroad'
    yield b'[{"id": 254, "name": "x", "color": [255, 255, 255]}]\n254'


if __name__ == "__main__":
    _harness.main(check_one, seeds)
    sys.exit(0)
