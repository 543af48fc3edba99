"""The Dask engine: blocks of a scene as tasks on a cluster, seams finished on the workers.

The client registers :class:`~.tasks.ModelPlugin` (one model per worker
process), then keeps a bounded number of block tasks in flight
(:class:`~geoseg.cluster.TaskStream`).  When a block finishes, small tasks run
where its result lies: one picks its finished uint8 pixels for the client to
write, others pick its int32 sums over each seam; once every block touching a
seam is done, a task on a worker adds the parts and finishes the seam.  Only
finished uint8 pixels reach the client, which writes them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..cluster import TaskStream
from .job import Piece, PredictJob
from .plan import StitchPlan

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["run_on_dask"]

log = logging.getLogger(__name__)

#: Follow-up tasks run before further blocks, so that block results leave worker memory soon.
_FOLLOW_UP_PRIORITY = 1_000_000


def _local_share(client: Client) -> int | None:
    """On a cluster running on this machine, its cores over all worker threads (each thread's share, for torch
    and for decoding); None on a remote cluster, where a worker thread counts as a core."""
    if getattr(client, "cluster", None) is None:
        return None
    return max(1, (os.cpu_count() or 1) // max(1, sum(client.nthreads().values())))


def run_on_dask(
    client: Client,
    job: PredictJob,
    plan: StitchPlan,
    sources: Sequence[Any],
    *,
    weights: Sequence[float] | None = None,
    tta: str = "none",
    refine: str = "none",
    device: str,
    class_ids: Sequence[int],
    sink: Callable[[Piece], None],
    on_tiles: Callable[[int], None] | None = None,
) -> None:
    """Predict every block of ``plan`` on the cluster and ``sink`` each finished piece (``class_ids``: the model's).

    ``sources`` are the models (file paths or Model objects), ensembled with ``weights`` and test-time
    augmentation ``tta`` on every worker."""
    from .tasks import ModelPlugin, finish_seam, owned_piece, predict_block, seam_part

    name = f"geoseg-model-{uuid.uuid4().hex[:8]}"
    share = _local_share(client)
    plugin = ModelPlugin(tuple(sources), weights=weights, tta=tta, refine=refine, device=device,
                         torch_threads=share)
    client.register_plugin(plugin, name=name)
    class_ids = tuple(class_ids)
    seams_of = {b.index: plan.seams_of(b.index) for b in plan.blocks}
    waiting = {s.index: len(s.blocks) for s in plan.seams}
    parts: dict[int, list[Future]] = {s.index: [] for s in plan.seams}
    calls = [(name, job, b, seams_of[b.index]) for b in plan.blocks]
    finished = 0

    def follow(func: Callable[..., Any], *args: Any) -> Future:
        return client.submit(func, *args, pure=False, priority=_FOLLOW_UP_PRIORITY)

    try:
        with TaskStream(client, predict_block, calls) as stream:
            for tag, future in stream:
                if not isinstance(tag, int):  # a finished piece: an owned window or a seam
                    piece = future.result()
                    future.release()
                    if piece is not None:
                        sink(piece)
                        finished += 1
                    continue
                if future.status != "finished":
                    future.result()  # raises the block's error
                block = plan.blocks[tag]
                if block.owned is not None:
                    stream.add(follow(owned_piece, future), ("owned", tag))
                for seam in seams_of[tag]:
                    parts[seam.index].append(follow(seam_part, future, seam.index))
                    waiting[seam.index] -= 1
                    if waiting[seam.index] == 0:
                        stream.add(
                            follow(finish_seam, seam, class_ids, job.confidence, *parts.pop(seam.index)),
                            ("seam", seam.index),
                        )
                future.release()  # the picks above keep its result on the worker until they have run
                if on_tiles is not None:
                    on_tiles(block.tile_count)
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # noqa: BLE001 - a worker may already be gone; nothing to free there
            log.debug("could not unregister %s", name)
    expected = len(plan.seams) + sum(b.owned is not None for b in plan.blocks)
    if finished != expected:
        raise RuntimeError(f"internal error: {finished} of {expected} pieces of the scene were finished")

