"""Predicting blocks of a scene inside Dask workers.

:class:`ModelPlugin` loads the model once per worker process, on that worker's
device (one worker per GPU: worker ``i`` takes GPU ``i % count``), and every
thread of the worker shares it.  :func:`predict_block` opens the scene itself,
decodes the block's tiles (in its own thread on the CPU, in a few threads for
a GPU) and runs them through the shared
:class:`~.device.Predictor`.  Small follow-up tasks run where a block's result
lies: :func:`owned_piece` (finished uint8 pixels, for the client to write) and
:func:`seam_part` (int32 partial sums over one seam), and
:func:`finish_seam` adds a seam's parts from several blocks and finishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import ModelError
from ..io import rasters as _rasters  # noqa: F401  (imports rasterio once, before tasks run in worker threads)
from .job import BlockResult, Piece, PredictJob
from .plan import Block, Seam

__all__ = ["ModelPlugin", "finish_seam", "owned_piece", "predict_block", "seam_part"]

log = logging.getLogger(__name__)


class ModelPlugin(WorkerPlugin):
    """Holds one :class:`~.device.Predictor` (one model or an ensemble) per worker process."""

    def __init__(self, sources: Any, *, weights: Sequence[float] | None = None, tta: str = "none",
                 refine: str = "none", device: str = "auto", torch_threads: int | None = None) -> None:
        #: Model file paths or geoseg.Models (pickled to the worker); one source alone is one model.
        self.sources = tuple(sources) if isinstance(sources, (list, tuple)) else (sources,)
        self.weights = None if weights is None else tuple(weights)
        self.tta = tta
        self.refine = refine
        self.device_name = device
        #: Each worker thread's share of this machine's cores on a local cluster; None on a remote one.
        self.torch_threads = torch_threads
        self.predictor: Any = None

    def setup(self, worker: Any) -> None:
        heap_for_large_allocations()
        from ..model.network import Model, load_model
        from .device import Predictor, worker_device

        # Each worker thread runs its own blocks: on a remote cluster a thread stands for a core (one torch
        # thread each, as the local engine's CPU lanes); a local cluster shares the machine's cores out.  Torch
        # keeps the count per OS thread: each task sets it in its own thread (:meth:`settle`).
        threads = self.torch_threads or 1
        loaded = {s: load_model(s) for s in self.sources if not isinstance(s, Model)}  # a file named twice: once
        models = [s if isinstance(s, Model) else loaded[s] for s in self.sources]
        self.predictor = Predictor(models, worker_device(self.device_name, worker.name), weights=self.weights,
                                   tta=self.tta, refine=self.refine)
        log.info("worker %s: model on %s, %d torch thread(s)", worker.address, self.predictor.device, threads)

    def settle(self) -> None:
        """In a task's thread: this worker's torch threads.  A task thread left at torch's default (every core)
        ran a block 4x slower with a small network: its many small operations wait on each other's threads."""
        import torch

        threads = self.torch_threads or 1
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def teardown(self, worker: Any) -> None:
        self.predictor = None


#: glibc's mallopt parameter for the size from which allocations are mapped on their own (M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD = -3
#: Allocations smaller than this come from the heap on workers (glibc's own ceiling for its adaptive threshold).
HEAP_ALLOCATIONS_BELOW = 32 * 2**20


def heap_for_large_allocations() -> bool:
    """On a worker whose environment fixes glibc's trim threshold (Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_``)
    and not its mmap threshold, take allocations below :data:`HEAP_ALLOCATIONS_BELOW` from the heap.

    Fixing the trim threshold also fixes the mmap threshold at 128 KiB, so every tile-sized array (a decoded
    block, a tile, the network's activations) is mapped and unmapped anew, and its pages faulted in again: a
    block took twice as long (0.14 against 0.07 s, null network).  glibc would otherwise raise the threshold
    itself as such arrays are freed.  Memory above the trim threshold at the top of the heap is still given
    back.  True if the threshold was set.
    """
    import ctypes
    import os

    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:  # the process's own symbols: libc's on Linux, without looking for the library
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, HEAP_ALLOCATIONS_BELOW))
    except (OSError, AttributeError):  # not glibc
        return False


def _plugin(plugin_name: str) -> ModelPlugin:
    from distributed import get_worker

    plugin = get_worker().plugins.get(plugin_name)
    if plugin is None or getattr(plugin, "predictor", None) is None:
        raise ModelError(f"model plugin {plugin_name!r} is not set up on this worker")
    return cast(ModelPlugin, plugin)


def predict_block(plugin_name: str, job: PredictJob, block: Block, seams: Sequence[Seam]) -> BlockResult:
    """Read and predict one block on this worker's device."""
    from distributed import get_worker

    from .read import TileReader, default_read_threads

    plugin = _plugin(plugin_name)
    plugin.settle()
    predictor = plugin.predictor
    threads = job.read_threads
    if threads is None:  # on the CPU the task's thread decodes; a GPU gets its share of the cores
        gpu = predictor.device.type == "cuda"
        threads = plugin.torch_threads if gpu and plugin.torch_threads else default_read_threads(
            gpu=gpu, share=get_worker().state.nthreads)
    with TileReader(job, threads, tiles=block.tiles) as reader:
        tiles = reader.stream(block.tiles, ahead=job.batch_size + reader.threads)
        return predictor.run_block(job, block, seams, tiles)


def owned_piece(result: BlockResult) -> Piece | None:
    return result.owned


def seam_part(result: BlockResult, seam: int) -> np.ndarray:
    return result.parts[seam]


def finish_seam(seam: Seam, class_ids: Sequence[int], confidence: bool, *parts: np.ndarray) -> Piece:
    from .device import finish_seam as finish

    return finish(seam, class_ids, parts, confidence=confidence)
