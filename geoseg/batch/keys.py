"""Idempotency keys: what a scene's outputs depend on, hashed.

key = sha256 of (input fingerprint, model file sha256, hash of the output-changing
step options, geoseg version).  A scene whose key is unchanged and whose outputs
still match their checksums is not processed again.

Input fingerprint: the sha256 of the file's content; for files above
:data:`FULL_HASH_LIMIT` (mode ``auto``) or in mode ``sampled``, the sha256 of
its size plus its first and last MiB (fast on huge scenes, but blind to an
edit that keeps the size and touches neither end; use ``fingerprint: full``
where that matters).  Content hashes are cached with the file's size and
``mtime_ns`` (like ``git``'s index): a file whose size and mtime are unchanged
is not read again; a file that was only touched is re-hashed, found equal, and
not reprocessed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["FULL_HASH_LIMIT", "SAMPLE_BYTES", "Fingerprint", "HashCache", "file_sha256", "fingerprint", "scene_key"]

SAMPLE_BYTES = 1024 * 1024
#: Above this size, mode ``auto`` samples instead of hashing the whole file.
FULL_HASH_LIMIT = 256 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Fingerprint:
    """A file's size, modification time and content digest (``"<method>:<hex>"``)."""

    size: int
    mtime_ns: int
    digest: str


class HashCache(Protocol):
    """Remembers digests by path, size and mtime (the manifest is one)."""

    def cached_digest(self, path: str, size: int, mtime_ns: int, method: str) -> str | None: ...

    def store_digest(self, path: str, fp: Fingerprint) -> None: ...


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sampled_sha256(path: str | os.PathLike[str], size: int) -> str:
    h = hashlib.sha256(f"size={size};".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            fh.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def _method(mode: str, size: int) -> str:
    if mode == "full" or (mode == "auto" and size <= FULL_HASH_LIMIT):
        return "sha256"
    return "sampled-sha256"


def fingerprint(path: str | os.PathLike[str], *, mode: str = "auto", cache: HashCache | None = None) -> Fingerprint:
    """Fingerprint a file, reading it only if ``cache`` has no digest for its current size and mtime."""
    path = Path(path)
    st = path.stat()
    method = _method(mode, st.st_size)
    key = str(path)
    if cache is not None:
        digest = cache.cached_digest(key, st.st_size, st.st_mtime_ns, method)
        if digest is not None:
            return Fingerprint(st.st_size, st.st_mtime_ns, digest)
    hexdigest = file_sha256(path) if method == "sha256" else _sampled_sha256(path, st.st_size)
    result = Fingerprint(st.st_size, st.st_mtime_ns, f"{method}:{hexdigest}")
    if cache is not None:
        cache.store_digest(key, result)
    return result


def scene_key(*, input_digest: str, model_digest: str, steps_digest: str, version: str) -> str:
    """The idempotency key of one scene's processing."""
    parts = {"input": input_digest, "model": model_digest, "steps": steps_digest, "geoseg": version}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
