"""``run_batch``: plan from the manifest, run the scenes that need it on Dask, record every outcome.

A run takes the manifest's lock, puts rows a dead run left ``running`` back to
``pending``, removes stale temporary files, and plans: each scene of the
archive is processed if it is new, its key changed, an output is missing or
differs from its checksum, it was interrupted, or it failed transiently (or
permanently, with ``retry_failed``).  Scenes then run as Dask tasks, at most
``concurrency`` at a time; transient errors (I/O errors, lost workers,
timeouts) are retried up to ``retries`` times with exponential backoff,
permanent ones (geoseg's own errors: bad input, bad model) are recorded at
once.  With nothing to do no cluster is started.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import itertools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import check_folder_writable, output_errors
from ..errors import ConfigError, GeoSegError
from ..version import __version__
from .config import BatchConfig, load_batch_config, model_is_file
from .inputs import discover
from .keys import file_sha256, fingerprint, scene_key
from .layout import LOGS, assign_scene_ids, remove_stale_temporaries, scene_dir
from .manifest import STATUSES, Manifest, OutputRecord, RunLock, SceneRow, check_manifest_path, read_manifest
from .stac import write_collection
from .tasks import SceneJob, SceneOutcome, classify_error, one_line, process_scene

__all__ = ["BatchStatus", "BatchSummary", "FailedScene", "PlannedScene", "batch_status", "classify_error", "run_batch"]

log = logging.getLogger(__name__)

_MAX_BACKOFF = 600.0


@dataclass(frozen=True)
class PlannedScene:
    """A scene a run processes (or would, in a dry run), and why: new, changed key, failed-retry, ..."""

    scene_id: str
    source: str
    reason: str


@dataclass(frozen=True)
class FailedScene:
    scene_id: str
    source: str
    kind: str
    reason: str


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: ``planned`` scenes, ``processed`` of them done, and the archive's failed scenes."""

    total: int
    planned: tuple[PlannedScene, ...]
    processed: int
    up_to_date: int
    failed: tuple[FailedScene, ...]
    seconds: float
    manifest: Path
    log: Path | None = None
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every scene of the archive is done, 1 when some failed."""
        return 1 if self.failed else 0


@dataclass(frozen=True)
class BatchStatus:
    manifest: Path
    counts: Mapping[str, int]
    failures: tuple[FailedScene, ...]
    last_run: Mapping[str, Any] | None = None
    exists: bool = True

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# -- planning -----------------------------------------------------------------------------------


@dataclass
class _Plan:
    jobs: list[tuple[SceneJob, str, Mapping[str, OutputRecord]]] = field(default_factory=list)
    failed: list[FailedScene] = field(default_factory=list)
    skipped_failed: list[FailedScene] = field(default_factory=list)
    up_to_date: int = 0
    total: int = 0


def _model(config: BatchConfig) -> tuple[Path, Any, str]:
    """The model file, its card and a label for reports; a config error if unusable."""
    from ..classes import resolve_classes
    from ..model.file import read_card, resolve_model_path

    try:
        path = resolve_model_path(config.model).resolve()
        card = read_card(path)
        if config.steps.vectorize is not None:
            resolve_classes(card.classes, [str(c) for c in config.steps.vectorize.classes])
    except GeoSegError as exc:
        raise ConfigError(f"model: {exc}") from None
    return path, card, path.name if model_is_file(config.model) else config.model


def _model_digest(path: Path, cache: Manifest | None) -> str:
    """The model file's digest; for an smp ``save_pretrained`` folder, the digest of its config, card and weights."""
    if not path.is_dir():
        return fingerprint(path, mode="full", cache=cache).digest
    import hashlib

    from ..model.smp_folder import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE

    names = (CONFIG_FILE, CARD_FILE, WEIGHTS_FILE)
    parts = [fingerprint(path / name, mode="full", cache=cache).digest for name in names]
    return "folder:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def _outputs_check(row: SceneRow, root: Path, refreshed: dict[str, OutputRecord]) -> str | None:
    """``None`` if every recorded output exists with its checksum (re-hashing only files whose stat changed)."""
    if not row.outputs:
        return "outputs missing"
    for name, rec in row.outputs.items():
        path = root / rec.path
        try:
            st = path.stat()
        except FileNotFoundError:
            return "outputs missing"
        if (st.st_size, st.st_mtime_ns) == (rec.size, rec.mtime_ns):
            continue
        if st.st_size != rec.size or file_sha256(path) != rec.sha256:
            return "outputs changed"
        refreshed[name] = OutputRecord(rec.path, rec.sha256, st.st_size, st.st_mtime_ns)
    return None


def _reason(row: SceneRow | None, key: str, root: Path, retry_failed: bool,
            manifest: Manifest | None) -> str | None:
    if row is None:
        return "new"
    if row.status == "failed" and (row.failure_kind == "transient" or retry_failed):
        return "failed-retry"
    if row.key != key:
        return "changed key"
    if row.status == "failed":
        return None
    if row.status in ("pending", "running"):
        return "interrupted"
    refreshed: dict[str, OutputRecord] = {}
    why = _outputs_check(row, root, refreshed)
    if why is None and refreshed and manifest is not None and not manifest.readonly:
        manifest.refresh_outputs(row.scene_id, {**row.outputs, **refreshed})
    return why


def _plan(config: BatchConfig, manifest: Manifest | None, *, retry_failed: bool) -> _Plan:
    root = config.output.resolve()
    model_path, _, model_label = _model(config)
    model_digest = _model_digest(model_path, manifest)
    steps = config.output_options()
    steps_digest = config.steps_hash()
    sources = discover(config.input, exclude=root)
    rows = {r.source: r for r in manifest.scenes()} if manifest is not None else {}
    ids = assign_scene_ids({s.path: s.name for s in sources}, {src: r.scene_id for src, r in rows.items()})
    predict_options = dataclasses.asdict(config.steps.predict)
    vec = config.steps.vectorize
    vectorize_options = None if vec is None else {**dataclasses.asdict(vec), "classes": list(vec.classes)}
    plan = _Plan(total=len(sources))
    for source in sources:
        scene_id = ids[source.path]
        row = rows.get(source.path)
        error = source.error
        digest = None
        if error is None:
            try:
                digest = fingerprint(source.path, mode=config.input.fingerprint, cache=manifest).digest
            except OSError as exc:
                error = (f"InputError: cannot read {source.path!r} ({exc.strerror or exc}); "
                         "check the file exists and is readable")
        if error is not None or digest is None:
            plan.failed.append(FailedScene(scene_id, source.path, "permanent", error or "no fingerprint"))
            continue
        parts = {"input": digest, "model": model_digest, "steps": steps_digest, "geoseg": __version__}
        key = scene_key(input_digest=digest, model_digest=model_digest, steps_digest=steps_digest, version=__version__)
        reason = _reason(row, key, root, retry_failed, manifest)
        if reason is None:
            if row is not None and row.status == "failed":
                kind = row.failure_kind or "permanent"
                plan.skipped_failed.append(FailedScene(scene_id, source.path, kind, row.reason or ""))
            else:
                plan.up_to_date += 1
            continue
        job = SceneJob(
            scene_id=scene_id, source=source.path, root=str(root), out_dir=str(scene_dir(root, scene_id)),
            model=str(model_path), model_label=model_label, predict=predict_options, vectorize=vectorize_options,
            key=key, key_parts=parts, steps=steps, derived_from=source.derived_from,
            when=dict(source.when) if source.when else None,
        )
        plan.jobs.append((job, reason, row.outputs if row is not None else {}))
    return plan


# -- running ------------------------------------------------------------------------------------


def run_batch(
    config: BatchConfig | str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    progress: bool = False,
) -> BatchSummary:
    """Process every scene of the configured archive that is not already done under its current key.

    ``config`` is a :class:`~geoseg.batch_config.BatchConfig` or a YAML file.
    ``scheduler`` (else ``config.scheduler``) runs on an existing Dask cluster;
    otherwise a local cluster on 127.0.0.1 is started when there is work.
    ``dry_run`` only plans (nothing is written); ``retry_failed`` also retries
    scenes that failed permanently before.  Raises
    :class:`~geoseg.batch.BatchLockedError` if another run holds the manifest.
    """
    cfg = config if isinstance(config, BatchConfig) else load_batch_config(config)
    started = time.perf_counter()
    if dry_run:
        with read_manifest(cfg.manifest_path) as manifest:
            plan = _plan(cfg, manifest, retry_failed=retry_failed)
        planned = tuple(PlannedScene(j.scene_id, j.source, r) for j, r, _ in plan.jobs)
        return BatchSummary(plan.total, planned, 0, plan.up_to_date, tuple(plan.failed + plan.skipped_failed),
                            time.perf_counter() - started, cfg.manifest_path, dry_run=True)

    root = cfg.output
    check_manifest_path(cfg.manifest_path)  # before its lock file is made beside it
    check_folder_writable(root)
    fresh = not root.exists()
    with output_errors(root / "manifest.sqlite"):
        root.mkdir(parents=True, exist_ok=True)
    try:
        with (
            output_errors(cfg.manifest_path),
            RunLock(cfg.manifest_path),
            _run_log(root) as log_path,
            Manifest(cfg.manifest_path) as manifest,
        ):
            run_id = uuid.uuid4().hex
            recovered = manifest.recover_interrupted()
            removed = remove_stale_temporaries(root)
            if recovered or removed:
                log.info("recovered from an interrupted run: %d scene(s) back to pending, "
                         "%d temporary file(s) removed", recovered, removed)
            plan = _plan(cfg, manifest, retry_failed=retry_failed)
            for failure in plan.failed:
                manifest.set_failed(failure.scene_id, failure.source, kind=failure.kind, reason=failure.reason,
                                    run_id=run_id)
                log.warning("%s failed: %s", failure.scene_id, failure.reason)
            log.info("%d scene(s) in the archive: %d to process, %d up to date, %d failed before (skipped)",
                     plan.total, len(plan.jobs), plan.up_to_date, len(plan.skipped_failed))
            for job, _, _ in plan.jobs:
                manifest.set_pending(job.scene_id, job.source, key=job.key, parts=job.key_parts)
            manifest.start_run(run_id, planned=len(plan.jobs), log=str(log_path))
            processed, failed, outcome = 0, list(plan.failed), "aborted"
            try:
                if plan.jobs:
                    processed, run_failed = _execute(cfg, plan, manifest, run_id, scheduler=scheduler,
                                                     progress=progress)
                    failed += run_failed
                    # Attempts lost with a worker leave their temporary files; nothing of this run is in flight now.
                    removed = remove_stale_temporaries(root)
                    if removed:
                        log.info("removed %d temporary file(s) of attempts lost with their worker", removed)
                outcome = "finished"
                _write_collection(root, manifest)
            finally:
                manifest.release_running(run_id)
                manifest.finish_run(run_id, outcome=outcome)
            summary = BatchSummary(
                plan.total, tuple(PlannedScene(j.scene_id, j.source, r) for j, r, _ in plan.jobs), processed,
                plan.up_to_date, tuple(failed + plan.skipped_failed), time.perf_counter() - started,
                cfg.manifest_path, log_path,
            )
            log.info("run finished in %.1f s: %d processed, %d failed, %d up to date",
                     summary.seconds, processed, len(summary.failed), plan.up_to_date)
            return summary
    except ConfigError:
        if fresh:  # found while planning (an unreadable list or catalog): leave no output root behind
            shutil.rmtree(root, ignore_errors=True)
        raise


def _execute(cfg: BatchConfig, plan: _Plan, manifest: Manifest, run_id: str, *, scheduler: str | None,
             progress: bool) -> tuple[int, list[FailedScene]]:
    """Run the planned scenes on Dask, at most ``concurrency`` at once; returns (scenes done, scenes failed)."""
    from distributed import wait
    from tqdm.auto import tqdm

    from ..cluster import ClusterSpec, dask_client

    spec = ClusterSpec(scheduler=scheduler or cfg.scheduler, workers=cfg.workers)
    with (
        dask_client(spec) as client,
        client.as_current(),
        tqdm(total=len(plan.jobs), unit="scene", disable=not progress) as bar,
    ):
        queue = _Queue(cfg, plan, manifest, run_id, bar)
        running: dict[Any, SceneJob] = {}
        try:
            while queue or running:
                while len(running) < cfg.concurrency and (job := queue.next_ready()) is not None:
                    manifest.set_running(job.scene_id, run_id)
                    key = f"geoseg-scene-{job.scene_id}-{uuid.uuid4().hex[:8]}"
                    # Ahead of queued tile tasks: a scene task only plans and then waits, seceded from its thread.
                    running[client.submit(process_scene, job, key=key, pure=False, priority=10)] = job
                if not running:
                    time.sleep(queue.wait_time() or 0.05)
                    continue
                try:
                    finished, _ = wait(list(running), timeout=queue.wait_time(), return_when="FIRST_COMPLETED")
                except TimeoutError:  # a retry is due
                    continue
                for future in finished:
                    queue.record(running.pop(future), _outcome(future))
        except BaseException:
            for future in running:
                future.cancel()
            raise
    return queue.done, queue.failed


def _outcome(future: Any) -> SceneOutcome:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - the task itself was lost (worker died, cancelled, timeout): recorded
        return SceneOutcome({}, {}, error=(classify_error(exc), one_line(exc)))
    finally:
        future.release()


class _Queue:
    """Scenes waiting to run, transient failures waiting out their backoff, and what became of each."""

    def __init__(self, cfg: BatchConfig, plan: _Plan, manifest: Manifest, run_id: str, bar: Any) -> None:
        self.cfg, self.manifest, self.run_id, self.bar = cfg, manifest, run_id, bar
        self.root = cfg.output.resolve()
        self.waiting = collections.deque(job for job, _, _ in plan.jobs)
        self.previous = {job.scene_id: old for job, _, old in plan.jobs}
        self.retry_at: list[tuple[float, int, SceneJob]] = []
        self.tries: collections.Counter[str] = collections.Counter()
        self.order = itertools.count()
        self.failed: list[FailedScene] = []
        self.done, self.total = 0, len(plan.jobs)

    def __bool__(self) -> bool:
        return bool(self.waiting or self.retry_at)

    def next_ready(self) -> SceneJob | None:
        """A retry whose backoff is over, else the next new scene."""
        if self.retry_at and self.retry_at[0][0] <= time.monotonic():
            return heapq.heappop(self.retry_at)[2]
        return self.waiting.popleft() if self.waiting else None

    def wait_time(self) -> float | None:
        """Seconds until the next retry is due (``None``: no retry waiting)."""
        return max(0.05, self.retry_at[0][0] - time.monotonic()) if self.retry_at else None

    def record(self, job: SceneJob, outcome: SceneOutcome) -> None:
        """Done, queued for a retry after its backoff, or failed: in the manifest first."""
        if outcome.error is None:
            self.manifest.set_done(job.scene_id, outcome.outputs, outcome.timings)
            _remove_replaced(self.root, self.previous.get(job.scene_id, {}), outcome.outputs)
            self.done += 1
            log.info("%s done in %.1f s (%d of %d)", job.scene_id, outcome.timings.get("total", 0.0), self.done,
                     self.total)
            self.bar.update(1)
            return
        kind, reason = outcome.error
        self.tries[job.scene_id] += 1
        tries = self.tries[job.scene_id]
        if kind == "transient" and tries <= self.cfg.retries:
            delay = min(_MAX_BACKOFF, self.cfg.retry_backoff * 2 ** (tries - 1))
            log.warning("%s: %s; retry %d of %d in %.0f s", job.scene_id, reason, tries, self.cfg.retries, delay)
            self.manifest.set_waiting(job.scene_id, reason)
            heapq.heappush(self.retry_at, (time.monotonic() + delay, next(self.order), job))
            return
        if kind == "transient":
            reason = f"{reason} (after {tries} attempts)"
        self.manifest.set_failed(job.scene_id, job.source, kind=kind, reason=reason, key=job.key, run_id=self.run_id)
        self.failed.append(FailedScene(job.scene_id, job.source, kind, reason))
        log.warning("%s failed (%s): %s", job.scene_id, kind, reason)
        self.bar.update(1)


def _remove_replaced(root: Path, old: Mapping[str, OutputRecord], new: Mapping[str, OutputRecord]) -> None:
    """Delete outputs of an earlier key that the new outputs no longer include (e.g. a class dropped)."""
    keep = {r.path for r in new.values()}
    for rec in old.values():
        path = (root / rec.path).resolve()
        if rec.path not in keep and path.is_relative_to(root) and path.is_file():
            log.info("removing %s (no longer an output)", path)
            path.unlink()


def _write_collection(root: Path, manifest: Manifest) -> None:
    """The archive's STAC collection, linking the item of every finished scene."""
    items = [root / r.outputs["item"].path for r in manifest.scenes() if r.status == "done" and "item" in r.outputs]
    write_collection(root, [p for p in items if p.is_file()])


@contextlib.contextmanager
def _run_log(root: Path) -> Iterator[Path]:
    """Log the run at INFO level to ``<root>/logs/<run number>-<UTC time>.log``, leaving the console's level as it was.

    The zero-padded run number comes first, so listing the folder by name lists the runs in the order
    they started, also when two runs start within the same second.
    """
    folder = root / LOGS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    numbers = [int(p.name.split("-", 1)[0]) for p in folder.glob("*.log") if p.name.split("-", 1)[0].isdigit()]
    n = max(numbers, default=0) + 1
    while True:
        path = folder / f"{n:06d}-{stamp}.log"
        try:
            with open(path, "x", encoding="utf-8"):
                break
        except FileExistsError:
            n += 1
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("geoseg")
    level, propagate, threshold = logger.level, logger.propagate, logger.getEffectiveLevel()
    forward = _Forward(threshold)
    logger.addHandler(handler)
    if threshold > logging.INFO:
        # INFO records go to the file; only those at the old threshold reach the console handlers.
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(forward)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(forward)
        logger.setLevel(level)
        logger.propagate = propagate
        handler.close()


class _Forward(logging.Handler):
    """Passes records at or above ``level`` on to the root logger's handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


# -- status -------------------------------------------------------------------------------------


def batch_status(config: BatchConfig | str | os.PathLike[str]) -> BatchStatus:
    """Counts by status, the failed scenes with their reasons, and the last run, read from the manifest."""
    cfg = config if isinstance(config, BatchConfig) else load_batch_config(config)
    with read_manifest(cfg.manifest_path) as manifest:
        if manifest is None:
            return BatchStatus(cfg.manifest_path, dict.fromkeys(STATUSES, 0), (), None, exists=False)
        rows = manifest.scenes()
        failures = tuple(FailedScene(r.scene_id, r.source, r.failure_kind or "permanent", r.reason or "")
                         for r in rows if r.status == "failed")
        return BatchStatus(cfg.manifest_path, manifest.counts(), failures, manifest.last_run())
