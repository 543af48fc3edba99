"""Atomic outputs: write to a temporary name in the destination folder, then rename.

A crash leaves no half-written file under the final name; the temporary file is
removed on failure.  Before any work, :func:`check_writable` refuses an output
that exists (without ``overwrite``), that is one of the inputs (through links,
``..`` and hard links alike), or whose folder cannot be written; while writing,
a full disk or a read-only folder becomes one :class:`~geoseg.errors.OutputError`
that names the file and the fix, whichever library hit it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import GeoSegError, OutputError, OutputExistsError, UsageError, output_error
from .safety.files import same_file

__all__ = [
    "TMP_MARKER",
    "atomic_path",
    "check_folder_writable",
    "check_free_space",
    "check_not_input",
    "check_writable",
    "disk_full",
    "output_errors",
    "temporary_sibling",
    "usual_permissions",
]

#: Every temporary output carries this in its name, so stale ones can be found and removed.
TMP_MARKER = ".geoseg-tmp-"
#: Below this many free bytes, a failure while writing is taken for a full disk.
_NEARLY_FULL = 1 << 20
#: errnos that always mean "this output cannot be written here".
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_WRITE_WORDS = ("no space left", "disk is full", "disk full", "read-only file system", "quota exceeded")

PathLike = str | os.PathLike[str]


def check_not_input(path: PathLike, inputs: Iterable[PathLike | None], *, what: str = "output") -> None:
    """Refuse an output that is one of ``inputs`` (the same file through links, ``..`` or hard links)."""
    for source in inputs:
        if source is not None and same_file(path, source):
            raise UsageError(
                f"{what} {str(path)!r} is the input {str(source)!r}; writing it would destroy the input, "
                "choose another output file"
            )


def _probe_folder(folder: Path, path: Path) -> None:
    """Create and remove an empty file in ``folder``: a read-only or full folder fails now, not after the work."""
    probe = folder / f"{TMP_MARKER}probe-{uuid.uuid4().hex[:12]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    with contextlib.suppress(OSError):
        probe.unlink()


def check_writable(path: PathLike, *, overwrite: bool, inputs: Iterable[PathLike | None] = ()) -> Path:
    """Fail early (before any work) if ``path`` may not be written: it exists (without ``overwrite``),
    it is a folder or one of ``inputs``, or its folder is missing or cannot be written."""
    path = Path(path)
    check_not_input(path, inputs)
    if path.is_dir():
        raise OutputExistsError(f"{str(path)!r} is a directory, not a file; give a file name")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{str(path)!r} already exists; pass --overwrite (overwrite=True) to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        error = OutputError(f"output folder {str(parent)!r} does not exist; create it first")
        error.errno = errno.ENOENT
        raise error
    _probe_folder(parent, path)
    return path


def check_folder_writable(folder: PathLike) -> Path:
    """Fail early if files cannot be created in ``folder`` (or, if it does not exist yet, in its nearest parent)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputExistsError(f"{str(existing)!r} is a file, not a folder; choose another output folder")
    _probe_folder(existing, folder)
    return folder


def check_free_space(path: PathLike, needed: int) -> None:
    """Fail early if the folder of ``path`` has fewer than ``needed`` bytes free (the output would not fit)."""
    path = Path(path)
    try:
        free = shutil.disk_usage(path.parent if str(path.parent) else Path(".")).free
    except OSError:
        return
    if free < needed:
        detail = f"it needs about {needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free"
        raise output_error(path, OSError(errno.ENOSPC, detail))


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f"{path.stem}{TMP_MARKER}{uuid.uuid4().hex[:12]}{path.suffix}")


def disk_full(folder: PathLike) -> bool:
    """Whether the file system holding ``folder`` has (next to) no free space left."""
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False


def _write_failure(exc: BaseException, folder: Path) -> int | None:
    """The errno that explains ``exc`` as a failure to write into ``folder`` (``None``: some other error)."""
    if isinstance(exc, GeoSegError) or not isinstance(exc, Exception):
        return None
    code = getattr(exc, "errno", None)
    if code in _WRITE_ERRNOS:
        return int(code)
    text = str(exc).lower()
    if "read-only" in text:
        return errno.EROFS
    if any(word in text for word in _WRITE_WORDS) or disk_full(folder):
        return errno.ENOSPC
    return None


@contextlib.contextmanager
def output_errors(path: PathLike) -> Iterator[None]:
    """Turn a full disk or read-only folder met while writing ``path`` (by any library) into an OutputError."""
    path = Path(path)
    try:
        yield
    except Exception as exc:
        code = _write_failure(exc, path.parent if str(path.parent) else Path("."))
        if code is not None:
            raise output_error(path, exc, code) from None
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the system tells (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_permissions(path: PathLike) -> None:
    """Give a file the permissions a plain ``open(path, "w")`` would (0666 less the umask).

    Some writers (safetensors, ``tempfile.mkstemp``) create files readable by their owner only.
    """
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~_umask())


@contextlib.contextmanager
def atomic_path(path: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = check_writable(path, overwrite=overwrite, inputs=inputs)
    tmp = temporary_sibling(path)
    try:
        with output_errors(path):
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"nothing was written to {tmp}")
            if path.exists() and not overwrite:
                raise OutputExistsError(f"{str(path)!r} appeared while writing; pass --overwrite to replace it")
            usual_permissions(tmp)
            os.replace(tmp, path)
    finally:
        # A read-only file system refuses even to remove what is not there (EROFS, not ENOENT).
        with contextlib.suppress(OSError):
            tmp.unlink()
