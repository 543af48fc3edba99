"""The local engine: threads in this process, one model per device, no Dask.

Each *lane* is a thread that runs whole blocks on one device: one lane per
GPU, and on the CPU a couple of lanes that share the torch threads
(:class:`CpuThreads`; each lane holds one tile's activations).  A pool of
reader threads decodes tiles ahead of GPU lanes; CPU lanes decode their own
between tiles (see :func:`~.read.default_read_threads`).  Either way the
file's blocks are decoded once for all lanes.  Torch and GDAL release the
GIL, so decoding and the network overlap.
This thread adds the blocks' seam sums (:class:`SeamSums`) and hands every
finished piece to ``sink`` (the writer).
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..tiling import Tile
from .device import Predictor, finish_seam
from .job import BlockResult, Piece, PredictJob
from .plan import Block, StitchPlan
from .read import TileReader, default_read_threads

__all__ = ["CpuThreads", "SeamSums", "run_local"]


class SeamSums:
    """Partial seam sums added as blocks finish; a seam is finished once every block touching it is in."""

    def __init__(self, plan: StitchPlan, class_ids: Sequence[int], *, confidence: bool = True) -> None:
        self._plan = plan
        self._class_ids = tuple(class_ids)
        self._confidence = confidence
        self._waiting = {s.index: len(s.blocks) for s in plan.seams}
        self._sums: dict[int, np.ndarray] = {}

    def add(self, result: BlockResult) -> list[Piece]:
        """Add one block's parts; the seams this finishes."""
        done = []
        for index, part in result.parts.items():
            total = self._sums.get(index)
            self._sums[index] = part.astype(np.int32, copy=True) if total is None else np.add(total, part, out=total)
            self._waiting[index] -= 1
            if self._waiting[index] == 0:
                seam = self._plan.seams[index]
                done.append(finish_seam(seam, self._class_ids, [self._sums.pop(index)], confidence=self._confidence))
        return done

    @property
    def complete(self) -> bool:
        return not any(self._waiting.values())


#: A lane whose tiles take less than this (seconds, on its first share of threads) keeps that share when
#: other lanes finish: more threads only pay off for large operations.  On 2 cores, a 1x1-convolution network
#: took 3.5 ms a tile on one thread and 7.4-8.6 ms on two; DeepLabV3+ ResNet-34 0.70 s on one and 0.35 s on two.
TAKE_OVER_ABOVE_S = 0.02


class CpuThreads:
    """Torch's CPU threads shared out among the CPU lanes that are still running.

    Lanes working on separate blocks need no synchronisation, unlike one
    network call split across every core, so each lane gets an equal share
    (on 2 cores: two lanes of one thread each).  When a lane runs out of
    blocks, the lanes still computing take over its threads between tiles, so
    the last block does not run on one core while the others idle; unless
    their tiles are quick (:data:`TAKE_OVER_ABOVE_S`), when more threads
    would only slow them down.  Torch keeps its thread count per OS thread, so
    each lane sets its own (:meth:`settle`); :meth:`restore` puts back the
    count new threads start with.
    """

    def __init__(self, lanes: int) -> None:
        import torch

        self.total = torch.get_num_threads()
        self.running = lanes
        self.first_share = max(1, self.total // max(1, lanes))
        self._lock = threading.Lock()
        self._mine = threading.local()

    def settle(self, tiles: int = 0) -> None:
        """In a lane's thread, between tiles (``tiles`` done since the last call): take this lane's share of
        the threads now."""
        import torch

        mine, now = self._mine, time.perf_counter()
        if tiles and getattr(mine, "share", None) == self.first_share and getattr(mine, "since", None) is not None:
            mine.per_tile = (now - mine.since) / tiles  # reading and computing, on the first share
        mine.since = now
        share = max(1, self.total // max(1, self.running))
        if share > self.first_share and getattr(mine, "per_tile", TAKE_OVER_ABOVE_S) < TAKE_OVER_ABOVE_S:
            share = self.first_share
        if getattr(mine, "share", None) != share:
            torch.set_num_threads(share)
            mine.share = share

    def leave(self) -> None:
        """A lane has no more blocks: the others share its threads."""
        with self._lock:
            self.running -= 1

    def restore(self) -> None:
        import torch

        torch.set_num_threads(self.total)


_DONE = object()


def run_local(
    job: PredictJob,
    plan: StitchPlan,
    lanes: Sequence[Predictor],
    sink: Callable[[Piece], None],
    *,
    on_tiles: Callable[[int], None] | None = None,
) -> None:
    """Predict every block of ``plan`` on ``lanes`` (one thread each) and ``sink`` every finished piece.

    A lane takes the next block as soon as it needs its tiles, so fast lanes
    take more blocks; reading runs ahead across block boundaries.  A device
    may appear in several lanes (the CPU).
    """
    results: queue.Queue[Any] = queue.Queue()
    reader = TileReader(job, job.read_threads or default_read_threads(gpu=any(p.device.type == "cuda" for p in lanes)),
                        tiles=(t for b in plan.blocks for t in b.tiles))
    stop = threading.Event()
    seams_of = {b.index: plan.seams_of(b.index) for b in plan.blocks}
    blocks = iter(plan.blocks)
    claim_lock = threading.Lock()
    cpu = CpuThreads(sum(p.device.type == "cpu" for p in lanes))

    def lane(predictor: Predictor) -> None:
        claimed: collections.deque[Block] = collections.deque()
        on_cpu = predictor.device.type == "cpu"

        def done_tiles(count: int) -> None:
            if on_cpu:
                cpu.settle(count)
            if on_tiles is not None:
                on_tiles(count)

        def tiles() -> Iterator[Tile]:
            while not stop.is_set():
                with claim_lock:
                    block = next(blocks, None)
                if block is None:
                    return
                claimed.append(block)
                yield from block.tiles

        stream = reader.stream(tiles(), ahead=job.batch_size + 2)
        try:
            if on_cpu:
                cpu.settle()
            for first in stream:
                block = claimed.popleft()
                mine = itertools.chain([first], itertools.islice(stream, block.tile_count - 1))
                results.put(predictor.run_block(job, block, seams_of[block.index], mine, on_batch=done_tiles))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
            if not stop.is_set():  # after a stop, reads are cancelled on purpose
                results.put(exc)
        finally:
            stream.close()  # in this thread: a stream reading here closes its dataset where it opened it
            if on_cpu:
                cpu.leave()
            results.put(_DONE)

    threads = [
        threading.Thread(target=lane, args=(p,), name=f"geoseg-lane-{i}", daemon=True) for i, p in enumerate(lanes)
    ]
    seams = SeamSums(plan, lanes[0].card.class_ids, confidence=job.confidence)
    try:
        for t in threads:
            t.start()
        running = len(threads)
        while running:
            try:
                item = results.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                if item.owned is not None:
                    sink(item.owned)
                for piece in seams.add(item):
                    sink(piece)
    finally:
        stop.set()
        reader.close()
        for t in threads:
            t.join(timeout=30)
        cpu.restore()
    if not seams.complete:
        raise RuntimeError("internal error: not every seam of the scene was finished")
