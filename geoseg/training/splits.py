"""Validation split by geography: whole blocks of each scene are held out.

``strips`` cuts each scene into vertical strips and holds out a fraction of
them (chosen with a seeded generator); ``checkerboard`` cuts it into square
blocks and holds out every ``m``-th diagonal (``m = round(1 / fraction)``);
``scenes`` holds out whole scenes (for many small scenes, where a strip would
leave no whole training tile).
Training tiles never overlap a validation block: tiles straddling a border
are dropped.  Validation reads tiles covering the blocks and scores each pixel
inside them exactly once.  Pure functions over pixel windows; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..tiling import PixelWindow

__all__ = ["overlaps_any", "split_tiles", "validation_blocks", "validation_windows"]


def _cuts(length: int, parts: int) -> list[int]:
    return [round(i * length / parts) for i in range(parts + 1)]


def validation_blocks(
    height: int,
    width: int,
    *,
    mode: str,
    fraction: float,
    strips: int = 5,
    block_size: int = 1024,
    seed: int = 0,
    scene: int = 0,
    held_out: bool = False,
) -> list[PixelWindow]:
    """The held-out blocks of one ``height`` x ``width`` scene (at least one, never all of it).

    Mode ``scenes``: the whole scene when ``held_out``, else none.
    """
    if mode == "scenes":
        return [PixelWindow(0, 0, height, width)] if held_out else []
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    if mode == "strips":
        n = min(strips, width)
        if n < 2:
            raise ConfigError(f"a scene {width} px wide cannot be cut into validation strips")
        k = min(n - 1, max(1, round(fraction * n)))
        rng = np.random.default_rng([seed, scene])
        chosen = sorted(rng.choice(n, size=k, replace=False).tolist())
        cuts = _cuts(width, n)
        return [PixelWindow(0, cuts[i], height, cuts[i + 1] - cuts[i]) for i in chosen]
    if mode == "checkerboard":
        period = max(2, round(1 / fraction))
        rows = max(1, round(height / block_size))
        cols = max(1, round(width / block_size))
        if rows * cols < 2:
            raise ConfigError(
                f"a {width}x{height} px scene holds fewer than two {block_size} px validation blocks; "
                "use a smaller validation.block_size or mode 'strips'"
            )
        rcuts, ccuts = _cuts(height, rows), _cuts(width, cols)
        blocks = [
            PixelWindow(rcuts[r], ccuts[c], rcuts[r + 1] - rcuts[r], ccuts[c + 1] - ccuts[c])
            for r in range(rows)
            for c in range(cols)
            if (r + c + scene) % period == 0
        ]
        if not blocks:  # a tiny grid may miss every diagonal; hold out the first block
            blocks = [PixelWindow(0, 0, rcuts[1], ccuts[1])]
        if len(blocks) == rows * cols:
            blocks = blocks[:-1]
        return blocks
    raise ConfigError(f"validation mode {mode!r} is not 'strips', 'checkerboard' or 'scenes'")


def overlaps_any(window: PixelWindow, blocks: Sequence[PixelWindow]) -> bool:
    return any(window.intersection(b) is not None for b in blocks)


def split_tiles(
    windows: Sequence[tuple[int, PixelWindow]],
    blocks: Sequence[Sequence[PixelWindow]],
) -> tuple[list[int], int]:
    """Positions of the ``(scene, window)`` tiles usable for training, and how many were dropped.

    A tile is dropped when its window overlaps any validation block of its scene.
    """
    keep, dropped = [], 0
    for i, (scene, window) in enumerate(windows):
        if overlaps_any(window, blocks[scene]):
            dropped += 1
        else:
            keep.append(i)
    return keep, dropped


def validation_windows(blocks: Sequence[PixelWindow], tile_size: int) -> list[tuple[PixelWindow, PixelWindow]]:
    """``(read window, scored window)`` pairs covering every block; each block pixel is scored exactly once.

    Read windows start at the block's corner and step by ``tile_size``; the last
    ones may reach past the block (or the scene), and only their part inside the
    block is scored.
    """
    out = []
    for block in blocks:
        for r in range(block.row_off, block.row_end, tile_size):
            for c in range(block.col_off, block.col_end, tile_size):
                read = PixelWindow(r, c, tile_size, tile_size)
                scored = read.intersection(block)
                if scored is not None:
                    out.append((read, scored))
    return out
