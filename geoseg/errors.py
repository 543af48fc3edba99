"""One exception tree for geoseg.

Every error a user can cause derives from :class:`GeoSegError` and from the
builtin exception that matches it, so callers may catch either.  Messages say
what was wrong, the values involved, and how to fix it.

The command line exits with status 2 for :class:`ConfigError` (which includes
:class:`UsageError`) and 1 for every other geoseg error.
"""

from __future__ import annotations

import errno
from typing import Any

__all__ = [
    "GeoSegError",
    "InputError",
    "ModelError",
    "ConfigError",
    "UsageError",
    "OutputExistsError",
    "OutputError",
    "LabelError",
    "output_error",
]


#: ``BaseException``'s own ``__context__`` slot, which :class:`GeoSegError` wraps.
_CONTEXT: Any = BaseException.__dict__["__context__"]


class GeoSegError(Exception):
    """Root of every error geoseg raises on purpose.

    An error raised ``from None`` carries no context anywhere, so it also survives being
    sent between processes (a Dask task's error reaches the client as itself, not as a
    generic ``Exception`` because some library error in its hidden context cannot be pickled).
    """

    @property
    def __context__(self) -> BaseException | None:
        if self.__suppress_context__:
            return None
        context: BaseException | None = _CONTEXT.__get__(self)
        return context

    @__context__.setter
    def __context__(self, value: BaseException | None) -> None:
        _CONTEXT.__set__(self, value)


class InputError(GeoSegError, ValueError):
    """An input raster or vector file cannot be used as it is."""


class ModelError(GeoSegError, ValueError):
    """A model file or model card is missing, malformed or incompatible."""


class ConfigError(GeoSegError, ValueError):
    """A configuration file or option is invalid (exit status 2)."""


class LabelError(GeoSegError, ValueError):
    """Training or truth labels cannot be used as they are."""


class UsageError(ConfigError, InputError):
    """Options that contradict each other or name what does not exist (e.g. overlap >= tile size).

    Exit status 2 like every configuration error; also an :class:`InputError`, as geoseg raised these before.
    """


class OutputExistsError(GeoSegError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class OutputError(GeoSegError, OSError):
    """An output cannot be written: a read-only or full disk, a missing folder, an output that is an input."""


_FIXES = {
    errno.ENOSPC: "the disk is full; free some space or write to another folder",
    errno.EDQUOT: "the disk quota is used up; free some space or write to another folder",
    errno.EROFS: "the file system is read-only; write to another folder",
    errno.EACCES: "permission denied; write to a folder you may write to",
    errno.EPERM: "permission denied; write to a folder you may write to",
    errno.ENOENT: "the folder does not exist; create it first",
    errno.EFBIG: "the file is too large for this file system; write to another folder",
}


def output_error(path: object, exc: BaseException, code: int | None = None) -> OutputError:
    """A one-line :class:`OutputError` for ``exc`` raised while writing ``path``, with the fix for its errno.

    ``code`` is the errno when ``exc`` has none of its own (e.g. the disk was found full after a library failed).
    """
    code = getattr(exc, "errno", None) or code
    detail = exc.strerror if isinstance(exc, OSError) and exc.errno is not None and exc.strerror else str(exc)
    text = " ".join(str(detail).split())
    if code is None:  # GDAL and SQLite report a full disk or a read-only folder in words only
        lowered = text.lower()
        for needle, guess in (("no space", errno.ENOSPC), ("disk is full", errno.ENOSPC), ("disk full", errno.ENOSPC),
                              ("read-only", errno.EROFS), ("readonly", errno.EROFS), ("permission", errno.EACCES)):
            if needle in lowered:
                code = guess
                break
    fix = _FIXES.get(code, "check the output folder is writable and has free space") if code is not None else (
        "check the output folder is writable and has free space"
    )
    error = OutputError(f"cannot write {str(path)!r}: {fix} ({text or type(exc).__name__})")
    if code is not None:
        error.errno = code
    return error
