"""Large benchmark scenes built from the real sample data by mirroring (written to a temp folder, never committed)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import psutil
import rasterio
from rasterio.windows import Window

DATA = Path(os.environ.get("GEOSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
KAMPALA = DATA / "kampala" / "kampala_oam_cluster1_image.tif"


def mirrored(source: Path, out: Path, size: int, *, block: int = 2048) -> Path:
    """A size x size GeoTIFF tiled from ``source`` mirrored (reflected) in both directions, written by blocks."""
    with rasterio.open(source) as src:
        data = src.read()
        profile = src.profile
    h, w = data.shape[1:]
    profile.update(
        width=size, height=size, tiled=True, blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER"
    )
    rows = np.arange(size) % (2 * h)
    rows = np.where(rows < h, rows, 2 * h - 1 - rows)
    with rasterio.open(out, "w", **profile) as dst:
        for r0 in range(0, size, block):
            for c0 in range(0, size, block):
                rr = rows[r0 : r0 + block]
                cc = np.arange(c0, min(c0 + block, size)) % (2 * w)
                cc = np.where(cc < w, cc, 2 * w - 1 - cc)
                dst.write(data[:, rr][:, :, cc], window=Window(c0, r0, len(cc), len(rr)))
    return out


def tree_rss(pid: int) -> int:
    """Summed RSS of a process and all its children (Dask workers included), in bytes."""
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a child may exit while we look
            total += p.memory_info().rss
    return total


class PeakRSS:
    """Samples :func:`tree_rss` of a process in a thread and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import threading

        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
