"""Atomic outputs: write to a temporary name in the destination folder, then rename.

A crash leaves no half-written file under the final name; the temporary file is
removed on failure.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputExistsError

__all__ = ["atomic_path", "check_writable", "TMP_MARKER"]

#: Every temporary output carries this in its name, so stale ones can be found and removed.
TMP_MARKER = ".geoseg-tmp-"


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Fail early (before any work) if ``path`` exists and may not be replaced."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} already exists; pass --overwrite (overwrite=True) to replace it")
    if path.exists() and path.is_dir():
        raise OutputExistsError(f"{str(path)!r} is a directory, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder {str(parent)!r} does not exist; create it first")
    return path


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f"{path.stem}{TMP_MARKER}{uuid.uuid4().hex[:12]}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = check_writable(path, overwrite=overwrite)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{str(path)!r} appeared while writing; pass --overwrite to replace it")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
