"""Dask clusters: a LocalCluster on 127.0.0.1 sized to the machine, or an existing scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ClusterSpec", "dask_client", "local_layout"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: ``scheduler`` address of an existing cluster, or a local one of ``workers`` processes."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None


def local_layout(workers: int | None, threads_per_worker: int | None) -> tuple[int, int]:
    """``(workers, threads per worker)`` for a local cluster on this machine."""
    cores = os.cpu_count() or 1
    n = max(1, workers or 1)
    threads = max(1, threads_per_worker or min(2, max(1, cores // n)))
    return n, threads


@contextlib.contextmanager
def dask_client(spec: ClusterSpec | None = None) -> Iterator[object]:
    """Yield a ``distributed.Client``; a LocalCluster started here is closed on exit."""
    from distributed import Client, LocalCluster

    spec = spec or ClusterSpec()
    if spec.scheduler:
        log.info("connecting to Dask scheduler %s", spec.scheduler)
        with Client(spec.scheduler, set_as_default=False) as client:
            yield client
        return
    n, threads = local_layout(spec.workers, spec.threads_per_worker)
    log.info("starting a local Dask cluster: %d worker process(es) x %d thread(s)", n, threads)
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            memory_limit=spec.memory_limit or "auto",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client
