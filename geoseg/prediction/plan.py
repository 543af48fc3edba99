"""Cutting a tile grid into blocks of tiles, and the scene into what each block finishes alone and seams.

A *block* is a rectangle of tiles (a range of tile rows by a range of tile
columns), the unit of work of one device or one Dask task.  It accumulates its
tiles' weighted probabilities over its *extent* (the union of their read
windows).  Pixels that no other block's tiles touch form the block's *owned*
window: the block finishes them itself (class ids and confidence, uint8).
Every other pixel lies in a *seam*: a rectangle touched by two or more blocks,
finished by adding their partial integer sums.  Sums of integers do not depend
on order, so the result is the same whichever way blocks are spread over
threads, devices and machines.  Pure maths, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..tiling import PixelWindow, Tile, axis_tiles

__all__ = ["Block", "Seam", "StitchPlan", "block_side", "plan_blocks"]

#: Largest int32 accumulator a block aims for, in bytes (classes x rows x columns x 4).  Every lane holds one,
#: with its finished pixels beside it, so this bounds what a large scene costs beyond a small one: at 64 MiB the
#: blocks of a 16384 x 16384 scene held 40 MiB accumulators against 2 MiB at 4096 x 4096.  Smaller blocks mean
#: more seams and, on Dask, more tasks: at 16 MiB an 8192 x 8192 scene ran 20 % slower on a 1-worker cluster.
ACCUMULATOR_BYTES = 32 * 2**20


#: One axis position of a tile: ``(index, read_start, core_start, core_end)`` (see :func:`~geoseg.tiling.axis_tiles`).
AxisTile = tuple[int, int, int, int]


@dataclass(frozen=True)
class Block:
    """A rectangle of tiles (row-major) with the window it accumulates over and the window it finishes alone.

    A block holds its tile rows and columns, not its tiles: :attr:`tiles` makes them when asked, so a plan
    of a huge scene costs memory per block, not per tile.
    """

    index: int
    rows: tuple[AxisTile, ...]
    cols: tuple[AxisTile, ...]
    tile_size: int
    extent: PixelWindow
    owned: PixelWindow | None

    @property
    def tile_count(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def tiles(self) -> tuple[Tile, ...]:
        """The block's tiles in row-major order."""
        size = self.tile_size
        return tuple(
            Tile(row=ri, col=ci, read=PixelWindow(rs, cs, size, size), core=PixelWindow(rc0, cc0, rc1 - rc0, cc1 - cc0))
            for ri, rs, rc0, rc1 in self.rows
            for ci, cs, cc0, cc1 in self.cols
        )


@dataclass(frozen=True)
class Seam:
    """Pixels touched by several blocks: the sum of their partial sums over ``window`` finishes them."""

    index: int
    window: PixelWindow
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class StitchPlan:
    """Blocks and seams that together cover a ``height`` x ``width`` scene exactly once."""

    height: int
    width: int
    blocks: tuple[Block, ...]
    seams: tuple[Seam, ...]
    #: Per block, the indices of the seams it contributes to.
    block_seams: tuple[tuple[int, ...], ...]

    @property
    def tiles(self) -> int:
        return sum(b.tile_count for b in self.blocks)

    def seams_of(self, block: int) -> tuple[Seam, ...]:
        """The seams that ``block`` contributes to."""
        return tuple(self.seams[i] for i in self.block_seams[block])


#: Blocks a scene is cut into at least, where its tiles allow: devices and workers then finish together.
MIN_BLOCKS = 16


def block_side(*, tile_size: int, overlap: int, classes: int, batch_size: int, tiles: int | None = None) -> int:
    """Tiles per block side: an accumulator of at most :data:`ACCUMULATOR_BYTES` and, for a scene of ``tiles``
    tiles, about :data:`MIN_BLOCKS` blocks or more; but at least one batch of tiles per block.

    Depends on the scene and the options only, never on the devices or workers, so every layout groups
    tiles into the same batches.
    """
    stride = max(1, tile_size - overlap)
    side_px = math.sqrt(ACCUMULATOR_BYTES / (4 * max(1, classes)))
    side = max(1, int((side_px - overlap) // stride))
    if tiles is not None:
        side = min(side, max(1, math.isqrt(tiles // MIN_BLOCKS)))
    return max(side, math.isqrt(max(0, batch_size - 1)) + 1)


def _groups(count: int, per_group: int) -> list[range]:
    """``range(count)`` split into the fewest runs of at most ``per_group``, as even as possible."""
    n = max(1, math.ceil(count / max(1, per_group)))
    bounds = [round(i * count / n) for i in range(n + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _spans(extents: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """Cut ``[0, length)`` at every extent's ends: ``(start, end, groups touching it)``."""
    cuts = sorted({0, length, *(min(max(v, 0), length) for e in extents for v in e)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        touching = tuple(g for g, (s, e) in enumerate(extents) if s < b and e > a)
        if not touching:
            raise ValueError(f"pixels {a}:{b} are covered by no tile")
        out.append((a, b, touching))
    return out


def plan_blocks(height: int, width: int, tile_size: int, overlap: int, side: int) -> StitchPlan:
    """Group the tile grid of a ``height`` x ``width`` scene (:func:`~geoseg.tiling.iter_tiles`) into blocks of up
    to ``side`` x ``side`` tiles; find owned windows and seams.  Works per axis: never lists every tile."""
    row_axis = [(i, *t) for i, t in enumerate(axis_tiles(height, tile_size, overlap))]
    col_axis = [(i, *t) for i, t in enumerate(axis_tiles(width, tile_size, overlap))]
    row_groups, col_groups = _groups(len(row_axis), side), _groups(len(col_axis), side)

    def extent(group: range, axis: int) -> tuple[int, int]:
        starts = [(row_axis if axis == 0 else col_axis)[i][1] for i in group]
        return max(min(starts), 0), min(max(starts) + tile_size, height if axis == 0 else width)

    row_ext = [extent(g, 0) for g in row_groups]
    col_ext = [extent(g, 1) for g in col_groups]
    row_spans, col_spans = _spans(row_ext, height), _spans(col_ext, width)
    own_rows = {g[0]: (a, b) for a, b, g in row_spans if len(g) == 1}
    own_cols = {g[0]: (a, b) for a, b, g in col_spans if len(g) == 1}

    blocks: list[Block] = []
    for gi, rows in enumerate(row_groups):
        for gj, cols in enumerate(col_groups):
            (r0, r1), (c0, c1) = row_ext[gi], col_ext[gj]
            owned = None
            if gi in own_rows and gj in own_cols:
                (a, b), (c, d) = own_rows[gi], own_cols[gj]
                owned = PixelWindow(a, c, b - a, d - c)
            blocks.append(
                Block(
                    index=len(blocks),
                    rows=tuple(row_axis[r] for r in rows),
                    cols=tuple(col_axis[c] for c in cols),
                    tile_size=tile_size,
                    extent=PixelWindow(r0, c0, r1 - r0, c1 - c0),
                    owned=owned,
                )
            )
    seams: list[Seam] = []
    for a, b, gr in row_spans:
        for c, d, gc in col_spans:
            if len(gr) == 1 and len(gc) == 1:
                continue  # owned by one block
            members = tuple(i * len(col_groups) + j for i in gr for j in gc)
            seams.append(Seam(len(seams), PixelWindow(a, c, b - a, d - c), members))
    block_seams: list[list[int]] = [[] for _ in blocks]
    for seam in seams:
        for member in seam.blocks:
            block_seams[member].append(seam.index)
    return StitchPlan(height, width, tuple(blocks), tuple(seams), tuple(tuple(s) for s in block_seams))
