"""Fixed-point stitching: weighted tile probabilities as integers, so sums do not depend on order.

Each tile's probabilities are multiplied by its blend weights and by a
power-of-two :func:`quantisation_scale`, rounded, and added as int32.  Integer
addition is exact and order-free, so blocks summed in any grouping, on any
device or machine, give the same bytes.  :func:`quantise_tile` and
:func:`finish_votes` are the numpy reference of what
:class:`~.device.Predictor` does on the device.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ..classes import NODATA
from ..tiling import axis_tiles

__all__ = ["finish_votes", "quantisation_scale", "quantise_tile"]


def quantisation_scale(height: int, width: int, tile_size: int, overlap: int) -> int:
    """Largest power-of-two scale whose per-pixel sums over the tile grid
    (:func:`~geoseg.tiling.iter_tiles`) cannot overflow int32."""

    def most_covering(length: int) -> int:  # read windows covering one pixel of an axis, at most
        starts = [s for s, _, _ in axis_tiles(length, tile_size, overlap)]
        return max(bisect.bisect_right(starts, x) - bisect.bisect_right(starts, x - tile_size) for x in starts)

    # Upper bound on how many read windows cover any one pixel.
    per_row, per_col = most_covering(height), most_covering(width)
    cover = max(per_row, 1) * max(per_col, 1)
    bits = 30 - int(np.ceil(np.log2(cover)))
    if bits < 16:
        raise ValueError(f"tiles overlap too much ({cover} tiles cover one pixel); reduce the overlap")
    return 1 << min(bits, 24)


def quantise_tile(probs: np.ndarray, valid: np.ndarray, weights: np.ndarray, scale: int) -> np.ndarray:
    """``round(probs * weights * scale * valid)`` as int32 ``(classes, h, w)`` (``weights`` from
    :func:`~.blend.grid_weights`).  The product is taken in float32, each factor rounded to float32 first: a vote
    of up to 2**24 is then exact to one unit, and the device multiplies half the bytes of float64."""
    q = np.rint(probs.astype(np.float32) * ((weights * scale) * valid).astype(np.float32)[None])
    return q.astype(np.int32)


def finish_votes(acc: np.ndarray, class_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Class ids (uint8, nodata 255) and confidence (uint8 1-255, 0 = nodata) from summed votes ``(C, h, w)``."""
    lut = np.asarray(class_ids, dtype=np.uint8)
    total = acc.sum(axis=0, dtype=np.int64)
    best = acc.argmax(axis=0)
    top = np.take_along_axis(acc, best[None], axis=0)[0].astype(np.float64)
    valid = total > 0
    ids = np.where(valid, lut[best], NODATA).astype(np.uint8)
    conf = np.zeros(total.shape, dtype=np.uint8)
    conf[valid] = np.clip(np.rint(255.0 * top[valid] / total[valid]), 1, 255).astype(np.uint8)
    return ids, conf
