"""Tile samplers (torchgeo :class:`~torchgeo.samplers.GeoSampler` subclasses).

:class:`TileSampler` draws tiles of the tile index with replacement, with
per-tile weights from :func:`tile_weights`:

* ``uniform``: every tile holding labelled pixels is equally likely;
* ``balanced``: ``w_t = sum_c a_c * hist_c(t)``, with one factor ``a_c`` per
  class chosen so that each class's expected share of the sampled pixels
  approaches a target share.  The targets are ``freq_c ** (1 - power)``
  normalised (``freq_c``: the class's share of the labelled pixels of the
  training tiles): ``power = 1`` aims at equal shares, ``power = 0`` at the
  natural frequencies.  The factors start at ``(1 / freq_c) ** power`` and are
  refined by a few multiplicative (iterative proportional fitting) steps;
  classes that mostly co-occur with others in the same tiles cannot always
  reach their target, and get as close as the tiles allow.  Every tile with
  labelled pixels keeps at least ``1 / max_ratio`` of the largest weight, so
  that sampling never collapses onto a handful of tiles.

Samplers yield torchgeo ``[x, y, t]`` slices and take all randomness from an
injected :class:`torch.Generator`, so a seeded generator gives the same tiles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torchgeo.samplers import GeoSampler

from ..errors import LabelError
from ..tiling import PixelWindow
from .dataset import SceneTiles, window_to_query

__all__ = [
    "SAMPLER_KINDS", "TileSampler", "WindowSampler", "expected_class_share", "target_class_share", "tile_weights"
]

SAMPLER_KINDS = ("balanced", "uniform")


def target_class_share(hists: np.ndarray, power: float = 1.0) -> np.ndarray:
    """The share of sampled pixels balanced sampling aims at for each class: ``freq ** (1 - power)``, normalised."""
    totals = np.asarray(hists, dtype=np.float64).sum(axis=0)
    freq = totals / max(totals.sum(), 1.0)
    target = np.where(freq > 0, np.power(np.where(freq > 0, freq, 1.0), 1.0 - power), 0.0)
    return target / max(target.sum(), 1e-12)


def expected_class_share(hists: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each class's share of the pixels drawn by a sampler with ``weights``, in expectation."""
    hists = np.asarray(hists, dtype=np.float64)
    drawn = (np.asarray(weights, dtype=np.float64)[:, None] * hists).sum(axis=0)
    return drawn / max(drawn.sum(), 1e-12)


def _spread(weights: np.ndarray, labelled: np.ndarray, max_ratio: float) -> np.ndarray:
    """Raise every labelled tile to at least ``1 / max_ratio`` of the largest weight."""
    if not labelled.any():
        return weights
    floor = weights.max() / max_ratio
    return np.where(labelled, np.maximum(weights, floor), 0.0)


def tile_weights(
    hists: np.ndarray, *, kind: str, power: float = 1.0, max_ratio: float = 50.0, iterations: int = 100
) -> np.ndarray:
    """Sampling weight per tile from per-tile class histograms ``(tiles, classes)``."""
    hists = np.asarray(hists, dtype=np.float64)
    if kind not in SAMPLER_KINDS:
        raise ValueError(f"sampler kind {kind!r} is not one of {SAMPLER_KINDS}")
    labelled = hists.sum(axis=1)
    if kind == "uniform" or not labelled.any():
        return (labelled > 0).astype(np.float64)
    totals = hists.sum(axis=0)
    present = totals > 0
    freq = totals / totals.sum()
    target = target_class_share(hists, power)
    factors = np.where(present, np.power(np.where(present, freq, 1.0), -power), 0.0)
    factors /= factors.max()
    labelled_tiles = labelled > 0
    weights = _spread(hists @ factors, labelled_tiles, max_ratio)
    for _ in range(iterations):
        share = expected_class_share(hists, weights)
        if np.abs(share - target).max() < 1e-3:
            break
        ratio = np.where(present & (share > 0), target / np.where(share > 0, share, 1.0), 1.0)
        factors = factors * np.sqrt(ratio)  # damped multiplicative step
        factors = np.where(present, np.clip(factors / factors.max(), 1e-9, None), 0.0)
        weights = _spread(hists @ factors, labelled_tiles, max_ratio)
    return weights


class TileSampler(GeoSampler):
    """Draw ``length`` tiles per epoch, with replacement, tile ``i`` with probability ``weights[i] / sum``."""

    def __init__(
        self,
        dataset: SceneTiles,
        windows: Sequence[tuple[int, PixelWindow]],
        weights: Sequence[float] | np.ndarray,
        *,
        length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dataset)
        if len(windows) != len(weights):
            raise ValueError(f"{len(windows)} tiles but {len(weights)} weights")
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if len(w) == 0 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise LabelError("no training tile holds labelled pixels; check the labels, ignore_id and validation split")
        self.windows = list(windows)
        self.queries = [window_to_query(dataset.scenes[k], k, win) for k, win in self.windows]
        self.weights = w
        self.length = int(length) if length is not None else int((w > 0).sum())
        self.generator = generator
        #: How often each tile has been drawn so far (for reports).
        self.drawn = np.zeros(len(self.windows), dtype=np.int64)

    @classmethod
    def from_histograms(
        cls,
        dataset: SceneTiles,
        windows: Sequence[tuple[int, PixelWindow]],
        hists: np.ndarray,
        *,
        kind: str = "balanced",
        power: float = 1.0,
        max_ratio: float = 50.0,
        length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> TileSampler:
        weights = tile_weights(hists, kind=kind, power=power, max_ratio=max_ratio)
        return cls(dataset, windows, weights, length=length, generator=generator)

    def __iter__(self) -> Iterator[tuple[slice, slice, slice]]:
        picks = torch.multinomial(self.weights, self.length, replacement=True, generator=self.generator)
        for i in picks.tolist():
            self.drawn[i] += 1
            yield self.queries[i]

    def __len__(self) -> int:
        return self.length


class WindowSampler(GeoSampler):
    """Yield fixed windows in order (validation tiles)."""

    def __init__(self, dataset: SceneTiles, windows: Sequence[tuple[int, PixelWindow]]) -> None:
        super().__init__(dataset)
        self.windows = list(windows)
        self.queries = [window_to_query(dataset.scenes[k], k, win) for k, win in self.windows]

    def __iter__(self) -> Iterator[tuple[slice, slice, slice]]:
        yield from self.queries

    def __len__(self) -> int:
        return len(self.queries)
