"""Fuzz the GeoTIFF header reader that checks strip and tile sizes before GDAL decodes anything.

Every input must end in a ``ValueError`` (not a TIFF, malformed), an
:class:`~geoseg.errors.InputError` (over the block budget) or a layout.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import _harness  # noqa: F401  (puts tests/ on the path)

try:
    import atheris

    with atheris.instrument_imports(include=["geoseg"]):
        from geoseg.errors import InputError
        from geoseg.safety.limits import check_block_budget
        from geoseg.safety.tiff import bytes_reader, parse_tiff_layout
except ImportError:
    from geoseg.errors import InputError
    from geoseg.safety.limits import check_block_budget
    from geoseg.safety.tiff import bytes_reader, parse_tiff_layout


def check_one(data: bytes) -> None:
    try:
        layout = parse_tiff_layout(bytes_reader(data))
    except ValueError:
        return
    try:
        check_block_budget("fuzzed.tif", block_width=layout.block_width, block_height=layout.block_height,
                           samples=layout.samples_per_block, bits=layout.bits)
    except InputError:
        pass


def seeds() -> Iterator[bytes]:
    import tempfile
    from pathlib import Path

    from support import hostile as h

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for path in (h.write_scene(folder / "tiled.tif", size=64), h.write_scene(folder / "strips.tif", size=64,
                                                                                  tiled=False),
                     h.write_declared_size(folder / "bomb.tif", width=1000, height=1000),
                     h.write_class_raster(folder / "lc.tif", size=64)):
            yield path.read_bytes()[:4096]


if __name__ == "__main__":
    _harness.main(check_one, seeds)
    sys.exit(0)
