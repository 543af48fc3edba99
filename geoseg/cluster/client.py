"""Choosing where Dask work runs: a client given by the caller, an existing scheduler, or a LocalCluster."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .main_guard import unguarded_main_script

if TYPE_CHECKING:
    from distributed import Client

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
def dask_client(spec: ClusterSpec | None = None, *, client: Client | None = None) -> Iterator[Client]:
    """The one cluster chooser: ``client`` if given (left open), else a client of ``spec.scheduler``,
    else a LocalCluster on 127.0.0.1 sized by ``spec``; what is started here is closed on exit."""
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    spec = spec or ClusterSpec()
    if spec.scheduler:
        log.info("connecting to Dask scheduler %s", spec.scheduler)
        with Client(spec.scheduler, set_as_default=False) as connected:
            yield connected
        return
    n, threads = local_layout(spec.workers, spec.threads_per_worker)
    script = unguarded_main_script()
    if script is not None:  # worker processes would run the script's top level again while they start
        log.warning("%s calls geoseg at its top level: running the Dask workers as threads of this process "
                    "(put the call under `if __name__ == \"__main__\":` for worker processes)", script)
    log.info("starting a local Dask cluster: %d worker %s x %d thread(s)", n,
             "process(es)" if script is None else "thread pool(s)", threads)
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads,
            processes=script is None,
            host="127.0.0.1" if script is None else None,  # threads talk in-process, on no network at all
            dashboard_address="127.0.0.1:0",
            memory_limit=spec.memory_limit or "auto",
            # A failed task reaches the client as its own error; the worker's "Compute Failed" log of the same
            # error (with its traceback) would print before the one-line message.
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster, set_as_default=False) as local,
    ):
        yield local
