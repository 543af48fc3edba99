"""Keys of the training caches (rasterised labels, part targets, tile indexes): what they were made from."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_key", "file_fingerprint"]


def file_fingerprint(path: str | os.PathLike[str]) -> list[Any]:
    """A file as a cache input: its resolved path, size and modification time."""
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def cache_key(**inputs: Any) -> str:
    """A short hash of ``inputs`` (JSON values), the same for the same inputs in any order."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
