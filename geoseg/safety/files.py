"""Files the user named, and only those: regular files, read with a size cap, paths kept inside a root.

A path that is a folder, a pipe (``mkfifo``), a device (``/dev/zero``) or a socket
is refused before it is opened, so no read can block forever or grow without end;
reads stop one byte past their cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ConfigError, GeoSegError, InputError

__all__ = ["is_inside", "read_capped", "read_text_capped", "regular_file", "same_file"]


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def regular_file(path: str | os.PathLike[str], what: str, *, error: type[GeoSegError] = InputError) -> Path:
    """``path`` if it is a regular file (links followed); a one-line ``error`` naming it otherwise."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise error(f"{what} {str(p)!r} does not exist; check the path") from None
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r} ({exc.strerror or exc}); check the path and permissions") from None
    if stat.S_ISDIR(mode):
        raise error(f"{what} {str(p)!r} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise error(f"{what} {str(p)!r} is not a regular file (a pipe, device or socket); give a file")
    return p


def read_capped(
    path: str | os.PathLike[str], what: str, limit: int, *, error: type[GeoSegError] = ConfigError
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    p = regular_file(path, what, error=error)
    try:
        # O_NONBLOCK: should the path have become a pipe since the check, opening it does not wait for a writer.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise error(f"{what} {str(p)!r} is not a regular file (a pipe, device or socket); give a file")
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r} ({exc.strerror or exc}); check the path and permissions") from None
    if len(data) > limit:
        raise error(f"{what} {str(p)!r} is larger than {_mib(limit)}, more than geoseg reads; is it the right file?")
    return data


def read_text_capped(
    path: str | os.PathLike[str], what: str, limit: int, *, error: type[GeoSegError] = ConfigError
) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (a leading byte-order mark is dropped)."""
    data = read_capped(path, what, limit, error=error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path``, every link resolved, lies inside ``root`` (also resolved); never for a malformed path."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except (ValueError, OSError):  # an embedded NUL byte, a link loop
        return False


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` are the same file: through links, hard links and ``..`` alike."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet): compare where they lead
        try:
            return os.path.realpath(a) == os.path.realpath(b)
        except (OSError, ValueError):
            return False
