"""Tile grids: pure maths over pixel windows, no I/O.

A scene of ``height`` x ``width`` pixels is cut into tiles.  Each tile has a
*read* window of ``tile_size`` x ``tile_size`` pixels (what the network sees)
and a *core* window inside it.  The cores partition the scene exactly; the
read window reaches at least ``overlap // 2`` pixels beyond the core on every
side that is not a scene edge (the halo).  The last row and column of tiles
are shifted inwards so their read windows end at the scene edge; scenes
smaller than a tile get one read window that reaches past the scene (padded
by the reader).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .windows import PixelWindow

__all__ = ["Tile", "axis_tiles", "iter_tiles", "tile_count", "tile_grid"]


@dataclass(frozen=True)
class Tile:
    """One tile of a grid: its position in the grid, read window and core window."""

    row: int
    col: int
    read: PixelWindow
    core: PixelWindow


def axis_tiles(length: int, tile_size: int, overlap: int) -> list[tuple[int, int, int]]:
    """Cut one axis into ``(read_start, core_start, core_end)`` triples.

    Read windows are ``tile_size`` long; cores partition ``[0, length)``.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile_size), got overlap={overlap}, tile_size={tile_size}")
    if length <= tile_size:
        return [(0, 0, length)]
    stride = tile_size - overlap
    halo_before = overlap // 2
    starts = list(range(0, length - tile_size, stride)) + [length - tile_size]
    if len(starts) > 1 and starts[-1] == starts[-2]:
        starts.pop()
    out: list[tuple[int, int, int]] = []
    for i, s in enumerate(starts):
        core_start = 0 if i == 0 else out[-1][2]
        if i == len(starts) - 1:
            core_end = length
        else:
            # Core ends halfway into the overlap with the next read window.
            nxt = starts[i + 1]
            core_end = min(max(nxt + halo_before, core_start + 1), s + tile_size)
        out.append((s, core_start, core_end))
    return out


def iter_tiles(height: int, width: int, tile_size: int, overlap: int) -> Iterator[Tile]:
    """The tiles of a ``height`` x ``width`` scene in row-major order, one at a time (memory: two axes)."""
    rows = axis_tiles(height, tile_size, overlap)
    cols = axis_tiles(width, tile_size, overlap)
    for ri, (rs, rc0, rc1) in enumerate(rows):
        for ci, (cs, cc0, cc1) in enumerate(cols):
            yield Tile(
                row=ri,
                col=ci,
                read=PixelWindow(rs, cs, tile_size, tile_size),
                core=PixelWindow(rc0, cc0, rc1 - rc0, cc1 - cc0),
            )


def tile_count(height: int, width: int, tile_size: int, overlap: int) -> int:
    """How many tiles :func:`iter_tiles` yields, without making them."""
    return len(axis_tiles(height, tile_size, overlap)) * len(axis_tiles(width, tile_size, overlap))


def tile_grid(height: int, width: int, tile_size: int, overlap: int) -> list[Tile]:
    """All tiles of a ``height`` x ``width`` scene, in row-major order."""
    return list(iter_tiles(height, width, tile_size, overlap))
