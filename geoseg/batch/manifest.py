"""The batch manifest: an SQLite database (WAL mode) that is the source of truth of a batch.

One row per scene: its source, status (``pending``, ``running``, ``done``,
``failed`` with a reason and whether the failure is ``permanent`` or
``transient``), attempts, timings, idempotency key and its parts, and the
outputs with their sizes, mtimes and sha256.  Dask keeps no state across a
restart; this file does.  Only the client process of a run writes it, under
the lock file :class:`RunLock` (``<manifest>.lock``); ``status`` and dry runs
read it without the lock.  Commits are synchronous (``synchronous=FULL``):
a scene is ``done`` only once its outputs are in place and the row is on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GeoSegError
from .keys import Fingerprint

__all__ = ["STATUSES", "BatchLockedError", "Manifest", "OutputRecord", "RunLock", "SceneRow"]

STATUSES = ("pending", "running", "done", "failed")
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scenes (
    scene_id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    key TEXT,
    input_digest TEXT,
    model_digest TEXT,
    steps_digest TEXT,
    geoseg_version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    failure_kind TEXT CHECK (failure_kind IS NULL OR failure_kind IN ('permanent', 'transient')),
    reason TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    timings TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    run_id TEXT
);
CREATE INDEX IF NOT EXISTS scenes_status ON scenes (status);
CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, pid INTEGER, host TEXT,
    planned INTEGER, done INTEGER, failed INTEGER, log TEXT, outcome TEXT
);
"""


class BatchLockedError(GeoSegError, RuntimeError):
    """Another batch run holds the manifest's lock."""


@dataclass(frozen=True)
class OutputRecord:
    """One output file of a scene: path relative to the output root, size, mtime and sha256."""

    path: str
    sha256: str
    size: int
    mtime_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True)
class SceneRow:
    scene_id: str
    source: str
    status: str
    key: str | None
    attempts: int
    failure_kind: str | None
    reason: str | None
    outputs: Mapping[str, OutputRecord] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> SceneRow:
        outputs = {k: OutputRecord(**v) for k, v in json.loads(row["outputs"]).items()}
        return cls(
            scene_id=row["scene_id"], source=row["source"], status=row["status"], key=row["key"],
            attempts=row["attempts"], failure_kind=row["failure_kind"], reason=row["reason"], outputs=outputs,
            timings=json.loads(row["timings"]), started_at=row["started_at"], finished_at=row["finished_at"],
        )


def check_manifest_path(path: Path) -> None:
    """Refuse a manifest path that holds something else (an input scene, a pipe): SQLite would overwrite it or hang."""
    from ..errors import ConfigError
    from ..safety.files import regular_file

    if not path.exists():
        return
    regular_file(path, "manifest", error=ConfigError)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        raise ConfigError(
            f"manifest {str(path)!r} is not a geoseg manifest (an SQLite database); point the manifest key "
            "at a new file"
        )


class Manifest:
    """Open (creating if needed) the manifest at ``path``; ``readonly=True`` never writes."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        check_manifest_path(self.path)
        if readonly:
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
        self._db.row_factory = sqlite3.Row
        if not readonly:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        version = self._db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            self._db.close()
            raise GeoSegError(f"{str(self.path)!r} is not a geoseg batch manifest of schema {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def scenes(self) -> list[SceneRow]:
        return [SceneRow.from_sql(r) for r in self._db.execute("SELECT * FROM scenes ORDER BY scene_id")]

    def scene(self, scene_id: str) -> SceneRow | None:
        row = self._db.execute("SELECT * FROM scenes WHERE scene_id = ?", (scene_id,)).fetchone()
        return SceneRow.from_sql(row) if row else None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM scenes GROUP BY status"):
            counts[status] = n
        return counts

    def last_run(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    # -- the digest cache (see keys.HashCache) ---------------------------------------------------

    def cached_digest(self, path: str, size: int, mtime_ns: int, method: str) -> str | None:
        row = self._db.execute("SELECT size, mtime_ns, digest FROM file_digests WHERE path = ?", (path,)).fetchone()
        if row and row["size"] == size and row["mtime_ns"] == mtime_ns and row["digest"].startswith(method + ":"):
            return row["digest"]
        return None

    def store_digest(self, path: str, fp: Fingerprint) -> None:
        if self.readonly:
            return
        with self._db:
            self._db.execute(
                "INSERT INTO file_digests VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = excluded.digest",
                (path, fp.size, fp.mtime_ns, fp.digest),
            )

    # -- writing ---------------------------------------------------------------------------------

    def recover_interrupted(self) -> int:
        """Rows left ``running`` by a run that died go back to ``pending``."""
        with self._db:
            cur = self._db.execute(
                "UPDATE scenes SET status = 'pending', reason = 'interrupted', updated_at = ? WHERE status = 'running'",
                (time.time(),),
            )
        return cur.rowcount

    def set_pending(self, scene_id: str, source: str, *, key: str, parts: Mapping[str, str]) -> None:
        """Queue a scene under ``key``; attempts restart when the key changes."""
        with self._db:
            self._db.execute(
                """INSERT INTO scenes (scene_id, source, status, key, input_digest, model_digest, steps_digest,
                       geoseg_version, updated_at)
                   VALUES (:scene_id, :source, 'pending', :key, :input, :model, :steps, :geoseg, :now)
                   ON CONFLICT(scene_id) DO UPDATE SET
                       status = 'pending', source = excluded.source,
                       attempts = CASE WHEN key IS excluded.key THEN attempts ELSE 0 END,
                       key = excluded.key, input_digest = excluded.input_digest,
                       model_digest = excluded.model_digest, steps_digest = excluded.steps_digest,
                       geoseg_version = excluded.geoseg_version, updated_at = excluded.updated_at""",
                {"scene_id": scene_id, "source": source, "key": key, "now": time.time(), **parts},
            )

    def set_running(self, scene_id: str, run_id: str) -> None:
        with self._db:
            now = time.time()
            self._db.execute(
                "UPDATE scenes SET status = 'running', attempts = attempts + 1, started_at = ?, updated_at = ?, "
                "run_id = ? WHERE scene_id = ?",
                (now, now, run_id, scene_id),
            )

    def set_done(self, scene_id: str, outputs: Mapping[str, OutputRecord], timings: Mapping[str, float]) -> None:
        with self._db:
            now = time.time()
            self._db.execute(
                "UPDATE scenes SET status = 'done', failure_kind = NULL, reason = NULL, outputs = ?, timings = ?, "
                "finished_at = ?, updated_at = ? WHERE scene_id = ?",
                (_outputs_json(outputs), json.dumps(dict(timings), sort_keys=True), now, now, scene_id),
            )

    def set_failed(self, scene_id: str, source: str, *, kind: str, reason: str, run_id: str,
                   key: str | None = None) -> None:
        with self._db:
            now = time.time()
            self._db.execute(
                """INSERT INTO scenes (scene_id, source, status, key, failure_kind, reason, finished_at, updated_at,
                       run_id)
                   VALUES (?, ?, 'failed', ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(scene_id) DO UPDATE SET status = 'failed', key = COALESCE(excluded.key, key),
                       failure_kind = excluded.failure_kind, reason = excluded.reason,
                       finished_at = excluded.finished_at, updated_at = excluded.updated_at,
                       run_id = excluded.run_id""",
                (scene_id, source, key, kind, reason, now, now, run_id),
            )

    def set_waiting(self, scene_id: str, reason: str) -> None:
        """A transient failure that will be retried in this run: back to ``pending`` with the reason."""
        with self._db:
            self._db.execute(
                "UPDATE scenes SET status = 'pending', failure_kind = 'transient', reason = ?, updated_at = ? "
                "WHERE scene_id = ?",
                (reason, time.time(), scene_id),
            )

    def refresh_outputs(self, scene_id: str, outputs: Mapping[str, OutputRecord]) -> None:
        """Record new mtimes of outputs whose content was verified unchanged."""
        with self._db:
            self._db.execute("UPDATE scenes SET outputs = ? WHERE scene_id = ?", (_outputs_json(outputs), scene_id))

    def release_running(self, run_id: str) -> int:
        """At the end of a run (even an aborted one): this run's ``running`` rows go back to ``pending``."""
        with self._db:
            cur = self._db.execute(
                "UPDATE scenes SET status = 'pending', reason = 'interrupted', updated_at = ? "
                "WHERE status = 'running' AND run_id = ?",
                (time.time(), run_id),
            )
        return cur.rowcount

    def start_run(self, run_id: str, *, planned: int, log: str | None) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, started_at, pid, host, planned, log) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, time.time(), os.getpid(), socket.gethostname(), planned, log),
            )

    def finish_run(self, run_id: str, *, outcome: str) -> None:
        """Close the run's record with the scenes it finished and failed (even if it was aborted)."""
        with self._db:
            self._db.execute(
                """UPDATE runs SET finished_at = :now, outcome = :outcome,
                       done = (SELECT COUNT(*) FROM scenes WHERE run_id = :run AND status = 'done'),
                       failed = (SELECT COUNT(*) FROM scenes WHERE run_id = :run AND status = 'failed')
                   WHERE run_id = :run""",
                {"now": time.time(), "outcome": outcome, "run": run_id},
            )


def _outputs_json(outputs: Mapping[str, OutputRecord]) -> str:
    return json.dumps({k: v.to_dict() for k, v in outputs.items()}, sort_keys=True)


class RunLock:
    """An exclusive ``fcntl`` lock on ``<manifest>.lock`` for the length of a run.

    The kernel drops the lock when the process dies, so a killed run never
    blocks the next one.  A second run on the same manifest fails at once with
    :class:`BatchLockedError` naming the holder.
    """

    def __init__(self, manifest_path: str | os.PathLike[str]) -> None:
        self.path = Path(f"{manifest_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BatchLockedError(
                f"another geoseg batch run is using {str(self.path.with_suffix(''))!r} ({holder}); "
                "wait for it to finish (cron: let runs not overlap, e.g. with flock or a systemd timer)"
            ) from None
        os.ftruncate(fd, 0)
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def read_manifest(path: str | os.PathLike[str]) -> Iterator[Manifest | None]:
    """The manifest opened read-only, or ``None`` if it does not exist yet."""
    if not Path(path).exists():
        yield None
        return
    with Manifest(path, readonly=True) as manifest:
        yield manifest
