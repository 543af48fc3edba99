"""A seam metric: do tile boundaries show up in a stitched prediction?

Compares a stitched class raster with a reference (for instance the same
network run on the whole scene at once, or a prediction with more overlap)
separately on pixels next to tile core boundaries and everywhere else.
A seam-free stitcher disagrees no more often on the seams than elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..tiling import Tile

__all__ = ["seam_mask", "SeamReport", "seam_disagreement"]


def seam_mask(tiles: Sequence[Tile], height: int, width: int, *, width_px: int = 1) -> np.ndarray:
    """Boolean ``(height, width)``: pixels within ``width_px`` of an interior tile-core boundary."""
    mask = np.zeros((height, width), dtype=bool)
    rows = sorted({t.core.row_off for t in tiles} - {0})
    cols = sorted({t.core.col_off for t in tiles} - {0})
    for r in rows:
        mask[max(0, r - width_px) : r + width_px, :] = True
    for c in cols:
        mask[:, max(0, c - width_px) : c + width_px] = True
    return mask


@dataclass(frozen=True)
class SeamReport:
    seam_pixels: int
    other_pixels: int
    seam_disagreement: float
    other_disagreement: float

    @property
    def overall(self) -> float:
        total = self.seam_pixels + self.other_pixels
        return (self.seam_disagreement * self.seam_pixels + self.other_disagreement * self.other_pixels) / max(total, 1)


def seam_disagreement(
    prediction: np.ndarray, reference: np.ndarray, seams: np.ndarray, *, nodata: int = 255
) -> SeamReport:
    """Share of valid pixels where ``prediction`` and ``reference`` differ, on seams and elsewhere."""
    if prediction.shape != reference.shape or prediction.shape != seams.shape:
        raise ValueError(f"shapes differ: {prediction.shape}, {reference.shape}, {seams.shape}")
    valid = (prediction != nodata) | (reference != nodata)
    differ = (prediction != reference) & valid
    on, off = seams & valid, ~seams & valid
    return SeamReport(
        seam_pixels=int(on.sum()),
        other_pixels=int(off.sum()),
        seam_disagreement=float(differ[on].sum() / max(on.sum(), 1)),
        other_disagreement=float(differ[off].sum() / max(off.sum(), 1)),
    )
