"""A GeoTIFF's block layout, read from its first directory without GDAL.

GDAL reports a compressed single-strip file as one-row blocks and decodes the
strip from its start for every read, so a strip of 12 000 x 12 000 pixels turns
each tile into seconds of work, and a larger one into an allocation of gigabytes.
The strip height (``RowsPerStrip``) or tile size is in the file's header: this
module reads it (classic TIFF and BigTIFF, either byte order) so the budget can be
checked before the first pixel is read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TiffLayout", "parse_tiff_layout", "read_tiff_layout"]

_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _SAMPLES, _ROWS_PER_STRIP, _PLANAR, _TILE_W, _TILE_H = (
    256, 257, 258, 259, 277, 278, 284, 322, 323,
)
_WANTED = {_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _SAMPLES, _ROWS_PER_STRIP, _PLANAR, _TILE_W, _TILE_H}
#: TIFF field types that hold unsigned integers: type -> (struct code, size).
_INTS = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}
_MAX_ENTRIES = 4096

#: ``read(offset, size)``: up to ``size`` bytes of the file from ``offset`` (fewer at its end).
Reader = Callable[[int, int], bytes]


@dataclass(frozen=True)
class TiffLayout:
    """What the first image directory declares."""

    width: int
    height: int
    samples: int
    bits: int
    compression: int
    planar: int
    block_width: int
    block_height: int
    tiled: bool

    @property
    def compressed(self) -> bool:
        return self.compression != 1

    @property
    def samples_per_block(self) -> int:
        """Samples decoded together in one block: all of them when interleaved by pixel."""
        return self.samples if self.planar == 1 else 1


def _unpack(read: Reader, fmt: str, offset: int) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    raw = read(offset, size)
    if len(raw) != size:
        raise ValueError(f"the file ends inside its header (at byte {offset})")
    return struct.unpack(fmt, raw)


def parse_tiff_layout(read: Reader) -> TiffLayout:
    """The layout of the first directory of the TIFF that ``read`` reads; ``ValueError`` if malformed."""
    mark = read(0, 2)
    if mark not in (b"II", b"MM"):
        raise ValueError("not a TIFF (no byte-order mark)")
    order = "<" if mark == b"II" else ">"
    (magic,) = _unpack(read, order + "H", 2)
    if magic == 42:
        (ifd,) = _unpack(read, order + "I", 4)
        count_fmt, entry_size, value_fmt, value_size = "H", 12, "I", 4
    elif magic == 43:
        (ifd,) = _unpack(read, order + "Q", 8)
        count_fmt, entry_size, value_fmt, value_size = "Q", 20, "Q", 8
    else:
        raise ValueError(f"not a TIFF (magic number {magic})")
    if ifd < 8:
        raise ValueError(f"the first directory is at byte {ifd}, inside the header")
    (entries,) = _unpack(read, order + count_fmt, ifd)
    if not 0 < entries <= _MAX_ENTRIES:
        raise ValueError(f"the first directory has {entries} entries")
    start = ifd + struct.calcsize(count_fmt)
    table = read(start, entries * entry_size)
    if len(table) != entries * entry_size:
        raise ValueError("the first directory is cut short")
    tags: dict[int, int] = {}
    for i in range(entries):
        at = i * entry_size
        tag, kind = struct.unpack_from(order + "HH", table, at)
        if tag not in _WANTED or kind not in _INTS:
            continue
        (n,) = struct.unpack_from(order + value_fmt, table, at + 4)
        code, size = _INTS[kind]
        if n < 1:
            raise ValueError(f"TIFF tag {tag} holds no value")
        if size * n <= value_size:  # the first value is in the entry itself
            (tags[tag],) = struct.unpack_from(order + code, table, at + 4 + value_size)
        else:  # stored elsewhere: the first value is enough
            (where,) = struct.unpack_from(order + value_fmt, table, at + 4 + value_size)
            (tags[tag],) = _unpack(read, order + code, where)
    if _WIDTH not in tags or _HEIGHT not in tags:
        raise ValueError("no image width or height")
    width, height = tags[_WIDTH], tags[_HEIGHT]
    tiled = _TILE_W in tags and _TILE_H in tags
    if tiled:
        block_width, block_height = tags[_TILE_W], tags[_TILE_H]
    else:  # RowsPerStrip 0 or absent (or 2^32 - 1): one strip for the whole image
        rows = tags.get(_ROWS_PER_STRIP) or height
        block_width, block_height = width, min(rows, height)
    return TiffLayout(
        width=width, height=height, samples=tags.get(_SAMPLES, 1), bits=tags.get(_BITS, 1),
        compression=tags.get(_COMPRESSION, 1), planar=tags.get(_PLANAR, 1), block_width=block_width,
        block_height=block_height, tiled=tiled,
    )


def read_tiff_layout(path: str | os.PathLike[str]) -> TiffLayout:
    """The layout of ``path``'s first directory; ``ValueError`` if it is not a well-formed TIFF."""
    with open(path, "rb") as fh:

        def read(offset: int, size: int) -> bytes:
            if offset < 0 or size < 0:
                return b""
            fh.seek(offset)
            return fh.read(size)

        return parse_tiff_layout(read)


def bytes_reader(data: bytes) -> Reader:
    """A :data:`Reader` over bytes in memory."""
    return lambda offset, size: data[offset : offset + size] if offset >= 0 and size >= 0 else b""
