"""The tile index: every training scene cut into a grid of tiles, with each tile's label histogram.

Dask tasks receive a scene's paths and a batch of tile windows, open the files
themselves and return small results: per tile the number of valid image pixels
and a histogram of label ids over them (read window), plus, over the tile's
core window (the cores partition the scene exactly), the label histogram and
per-band moments used for normalisation.  The index is cached as JSON in the
run folder, keyed by a hash of the inputs and the tile layout, and reused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..classes import NODATA
from ..cluster import bounded_map
from ..errors import LabelError
from ..io.rasters import open_raster, read_window
from ..model.card import Normalization
from ..tiling import PixelWindow, Tile, tile_grid
from .cache_keys import cache_key, file_fingerprint
from .labels import read_label_window

__all__ = [
    "BandMoments", "SceneSource", "TileIndex", "TileStats", "build_tile_index", "check_label_values", "index_tiles"
]

log = logging.getLogger(__name__)

_VERSION = 1
_TILES_PER_TASK = 32


@dataclass(frozen=True)
class SceneSource:
    """A training scene as Dask tasks see it: paths and the data bands to read."""

    image: str
    labels: str
    bands: tuple[int, ...]
    height: int
    width: int


@dataclass(frozen=True)
class TileStats:
    """One tile of the index: scene number, read window, valid image pixels, label histogram over them."""

    scene: int
    window: PixelWindow
    valid: int
    hist: Mapping[int, int]


@dataclass(frozen=True)
class BandMoments:
    """Count, mean and sum of squared deviations per band, mergeable across tiles (Chan et al.)."""

    count: int
    mean: tuple[float, ...]
    m2: tuple[float, ...]

    @classmethod
    def of(cls, pixels: np.ndarray) -> BandMoments:
        """Moments of ``pixels`` shaped ``(bands, n)``."""
        n = pixels.shape[1]
        if n == 0:
            return cls(0, (0.0,) * pixels.shape[0], (0.0,) * pixels.shape[0])
        data = pixels.astype(np.float64)
        mean = data.mean(axis=1)
        m2 = ((data - mean[:, None]) ** 2).sum(axis=1)
        return cls(n, tuple(mean.tolist()), tuple(m2.tolist()))

    def merge(self, other: BandMoments) -> BandMoments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        a_mean, b_mean = np.array(self.mean), np.array(other.mean)
        delta = b_mean - a_mean
        mean = a_mean + delta * other.count / n
        m2 = np.array(self.m2) + np.array(other.m2) + delta**2 * self.count * other.count / n
        return BandMoments(n, tuple(mean.tolist()), tuple(m2.tolist()))

    def normalization(self) -> Normalization:
        if self.count < 2:
            raise LabelError("the training scenes have fewer than two valid pixels; cannot compute normalisation")
        std = np.sqrt(np.array(self.m2) / (self.count - 1))
        return Normalization(self.mean, tuple(float(max(s, 1e-6)) for s in std))


@dataclass(frozen=True)
class TileIndex:
    tile_size: int
    stride: int
    scenes: tuple[SceneSource, ...]
    tiles: tuple[TileStats, ...]
    #: Per scene: label id -> pixel count over valid image pixels (exact: summed over tile cores).
    label_totals: tuple[Mapping[int, int], ...]
    moments: BandMoments

    def to_json(self) -> str:
        return json.dumps({
            "version": _VERSION,
            "tile_size": self.tile_size,
            "stride": self.stride,
            "scenes": [s.__dict__ | {"bands": list(s.bands)} for s in self.scenes],
            "tiles": [[t.scene, t.window.row_off, t.window.col_off, t.window.height, t.window.width, t.valid,
                       {str(k): v for k, v in t.hist.items()}] for t in self.tiles],
            "label_totals": [{str(k): v for k, v in totals.items()} for totals in self.label_totals],
            "moments": {"count": self.moments.count, "mean": list(self.moments.mean), "m2": list(self.moments.m2)},
        })

    @classmethod
    def from_json(cls, text: str) -> TileIndex:
        data = json.loads(text)
        if data.get("version") != _VERSION:
            raise ValueError(f"tile index version {data.get('version')} is not {_VERSION}")
        return cls(
            tile_size=data["tile_size"],
            stride=data["stride"],
            scenes=tuple(SceneSource(**(s | {"bands": tuple(s["bands"])})) for s in data["scenes"]),
            tiles=tuple(
                TileStats(t[0], PixelWindow(*t[1:5]), t[5], {int(k): v for k, v in t[6].items()}) for t in data["tiles"]
            ),
            label_totals=tuple({int(k): v for k, v in totals.items()} for totals in data["label_totals"]),
            moments=BandMoments(data["moments"]["count"], tuple(data["moments"]["mean"]), tuple(data["moments"]["m2"])),
        )


def _histogram(values: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(values, return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}


def index_tiles(image: str, bands: Sequence[int], labels: str, tiles: Sequence[Tile]) -> list[dict[str, Any]]:
    """Dask task: statistics of ``tiles`` of one scene (opens both files itself)."""
    out = []
    with open_raster(image) as img, open_raster(labels) as lab:
        for tile in tiles:
            data, valid = read_window(image, tile.read, tuple(bands), dataset=img)
            ids = read_label_window(labels, tile.read, dataset=lab)
            rows, cols = tile.core.relative_to(tile.read)
            core_valid = valid[rows, cols]
            core_pixels = data[:, rows, cols][:, core_valid]
            out.append({
                "valid": int(valid.sum()),
                "hist": _histogram(ids[valid]),
                "core_hist": _histogram(ids[rows, cols][core_valid]),
                "moments": BandMoments.of(core_pixels),
            })
    return out


def index_key(scenes: Sequence[SceneSource], tile_size: int, stride: int) -> str:
    return cache_key(
        scenes=[[file_fingerprint(s.image), file_fingerprint(s.labels), list(s.bands)] for s in scenes],
        tile_size=tile_size, stride=stride, version=_VERSION,
    )


def build_tile_index(
    scenes: Sequence[SceneSource],
    *,
    tile_size: int,
    stride: int,
    client: Any,
    cache_dir: str | os.PathLike[str],
    progress: bool = False,
) -> TileIndex:
    """Compute (or reuse from ``cache_dir``) the tile index of ``scenes`` on the Dask ``client``."""
    from tqdm.auto import tqdm

    cache = Path(cache_dir) / f"tile-index-{index_key(scenes, tile_size, stride)}.json"
    if cache.exists():
        try:
            index = TileIndex.from_json(cache.read_text())
            log.info("reusing tile index %s (%d tiles)", cache, len(index.tiles))
            return index
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable tile index cache %s (%s); rebuilding it", cache, exc)

    jobs: list[tuple[int, list[Tile]]] = []
    for k, scene in enumerate(scenes):
        grid = tile_grid(scene.height, scene.width, tile_size, tile_size - stride)
        jobs += [(k, grid[i : i + _TILES_PER_TASK]) for i in range(0, len(grid), _TILES_PER_TASK)]
    calls = [(scenes[k].image, scenes[k].bands, scenes[k].labels, batch) for k, batch in jobs]
    results: dict[int, list[dict[str, Any]]] = {}
    total = sum(len(b) for _, b in jobs)
    with (
        tqdm(total=total, unit="tile", desc="tile index", disable=not progress, leave=False) as bar,
        contextlib.closing(bounded_map(client, index_tiles, calls)) as finished,
    ):
        for j, result in finished:
            results[j] = result
            bar.update(len(jobs[j][1]))

    tiles: list[TileStats] = []
    totals: list[dict[int, int]] = [{} for _ in scenes]
    moments = BandMoments(0, (0.0,) * len(scenes[0].bands), (0.0,) * len(scenes[0].bands))
    for j, (k, batch) in enumerate(jobs):
        for tile, stats in zip(batch, results[j], strict=False):
            tiles.append(TileStats(k, tile.read, stats["valid"], stats["hist"]))
            for label, count in stats["core_hist"].items():
                totals[k][label] = totals[k].get(label, 0) + count
            moments = moments.merge(stats["moments"])
    index = TileIndex(tile_size, stride, tuple(scenes), tuple(tiles), tuple(totals), moments)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache, overwrite=True) as tmp:
        tmp.write_text(index.to_json())
    log.info("tile index: %d tiles of %d px over %d scene(s), cached in %s", len(tiles), tile_size, len(scenes), cache)
    return index


def check_label_values(index: TileIndex, class_ids: Iterable[int], ignore_id: int | None) -> None:
    """A clear error if a label raster holds ids that are neither classes, the ignore id nor 'no label'."""
    allowed = set(class_ids) | {NODATA} | ({ignore_id} if ignore_id is not None else set())
    for scene, totals in zip(index.scenes, index.label_totals, strict=False):
        unknown = {k: v for k, v in totals.items() if k not in allowed}
        if unknown:
            listed = ", ".join(f"{k} ({v} px)" for k, v in sorted(unknown.items())[:10])
            raise LabelError(
                f"labels {scene.labels!r} hold values that are not in the class scheme: {listed}; class ids are "
                f"{sorted(set(class_ids))}, ignore id {ignore_id}, {NODATA} = no label. "
                "Add the classes or fix the labels"
            )
