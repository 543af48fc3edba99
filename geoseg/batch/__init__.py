"""Scheduled, resumable processing of imagery archives: ``geoseg batch``.

:func:`run_batch` processes every scene of an archive that is not already done
under its current idempotency key, on a local Dask cluster or a given
scheduler, recording each scene in an on-disk manifest (SQLite) that survives
crashes; :func:`batch_status` reads that manifest.  The configuration schema
is :mod:`geoseg.batch_config`.

Modules: ``manifest`` (the SQLite source of truth and the run lock), ``keys``
(fingerprints and idempotency keys), ``layout`` (scene ids and output paths),
``inputs`` (finding scenes), ``stac`` (STAC items; STAC catalogs as input),
``task`` (one scene's work on a worker), ``runner`` (planning and scheduling).
"""

from __future__ import annotations

from .manifest import BatchLockedError
from .runner import BatchStatus, BatchSummary, FailedScene, PlannedScene, batch_status, run_batch

__all__ = [
    "BatchLockedError", "BatchStatus", "BatchSummary", "FailedScene", "PlannedScene", "batch_status", "run_batch",
]
