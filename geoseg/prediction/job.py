"""What a device or a Dask task needs to predict blocks of a scene, and what it hands back; plain, picklable values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.rasters import Grid
from ..tiling import PixelWindow

__all__ = ["BlockResult", "Piece", "PredictJob"]


@dataclass(frozen=True)
class PredictJob:
    """One scene's prediction settings, shared by every block of it."""

    #: The scene's path, and the 1-based bands the model reads.
    scene: str
    bands: tuple[int, ...]
    #: The grid the scene is read on (the model's ground resolution), or None for the scene's own.
    grid: Grid | None
    #: Size of the grid tiles are cut from, and how (see :func:`~geoseg.tiling.tile_grid`).
    height: int
    width: int
    tile_size: int
    overlap: int
    blend: str
    #: Fixed-point scale of the quantised weighted probabilities (see :func:`~.stitch.quantisation_scale`).
    scale: int
    batch_size: int
    #: True: invalid pixels come from the scene's mask (nodata, alpha); False: every pixel inside the scene is valid.
    use_mask: bool
    #: Threads decoding tiles for one device; None: :func:`~.read.default_read_threads`.
    read_threads: int | None
    #: Whether confidence is written (finishing pixels costs less without it).
    confidence: bool = True


@dataclass(frozen=True)
class Piece:
    """Finished pixels over ``window``: class ids (uint8, nodata 255) and confidence (uint8, 0 = nodata; None if
    not asked for)."""

    window: PixelWindow
    class_ids: np.ndarray
    confidence: np.ndarray | None


@dataclass(frozen=True)
class BlockResult:
    """A block's owned pixels, finished, and its partial int32 sums over each seam it touches (by seam index)."""

    block: int
    owned: Piece | None
    parts: dict[int, np.ndarray]
