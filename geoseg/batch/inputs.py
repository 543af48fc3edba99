"""Finding the scenes of an archive: a folder and a glob, a list file, or a local STAC catalog.

The archive is a folder (``input.folder``, or the folder of the list file or
catalog).  A scene whose path, once every symlink is resolved, lies outside it
(``/etc/passwd`` in a list, a link to elsewhere, a ``/vsicurl/`` URL) is found
but fails with a reason, unless ``input.allow_outside`` is set; so does a scene
that is not a regular file (a pipe, a device) or that lies inside the output
root.  The list file itself must be a regular file and is read with a size cap.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import TMP_MARKER
from ..errors import ConfigError
from ..safety.files import is_inside, read_text_capped
from ..safety.limits import MAX_LIST_BYTES
from .config import InputConfig
from .stac_input import read_stac_catalog

__all__ = ["Source", "discover"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One input scene: its file, the name its scene id is made from, and what is known about it."""

    #: Absolute path of the GeoTIFF (the scene's identity in the manifest).
    path: str
    #: Raw scene name: the file stem, or the STAC item id.
    name: str
    #: Where the scene came from, for the output item's ``derived_from`` link.
    derived_from: str
    #: STAC datetime properties of an input item (``None``: read from the file).
    when: Mapping[str, Any] | None = None
    #: Why the scene cannot be processed at all (e.g. a remote STAC asset).
    error: str | None = None


def archive_root(config: InputConfig) -> Path:
    """The folder scenes must lie in: ``input.folder``, else the list file's or the catalog's folder."""
    if config.folder is not None:
        return Path(config.folder).absolute()
    anchor = config.list if config.list is not None else config.stac
    if anchor is None:
        raise ConfigError("input needs one of folder, list, stac")
    return Path(anchor).absolute().parent


def discover(config: InputConfig, *, exclude: Path | None = None) -> list[Source]:
    """The scenes named by ``config``, sorted by path; ``exclude`` (the output root) is never searched."""
    root = archive_root(config)
    allow = getattr(config, "allow_outside", False)
    if config.folder is not None:
        sources = _from_folder(config.folder, config.glob, exclude)
    elif config.list is not None:
        sources = _from_list(config.list)
    elif config.stac is not None:
        sources = [
            Source(s.href, s.item_id, Path(s.item_href).as_uri(), s.when, s.error)
            for s in read_stac_catalog(config.stac, asset=config.asset, root=root, allow_outside=allow)
        ]
    else:
        raise ConfigError("input needs one of folder, list, stac")
    unique: dict[str, Source] = {}
    for source in sources:
        if source.path in unique:
            log.warning("%s is listed more than once; processing it once", source.path)
            continue
        unique[source.path] = _checked(source, root, allow, exclude)
    return [unique[k] for k in sorted(unique)]


def _checked(source: Source, root: Path, allow_outside: bool, exclude: Path | None) -> Source:
    """``source``, failing with a reason if it lies outside the archive, inside the output root, or is no file."""
    if source.error is not None:
        return source
    path = source.path
    if not allow_outside and not is_inside(path, root):
        return replace(source, error=(
            f"InputError: {path!r} lies outside the archive {str(root)!r} (or links out of it); move it inside, "
            "or set input.allow_outside: true to read it anyway"
        ))
    if exclude is not None and is_inside(path, exclude):
        return replace(source, error=f"InputError: {path!r} lies inside the output root {str(exclude)!r}; "
                                     "inputs and outputs must be apart")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return source  # missing or unreadable: the fingerprint step says so
    if not stat.S_ISREG(mode):
        return replace(source, error=f"InputError: {path!r} is not a regular file (a folder, pipe or device)")
    return source


def _file_source(path: Path) -> Source:
    return Source(str(path), path.stem, path.as_uri())


def _from_folder(folder: Path, pattern: str, exclude: Path | None) -> list[Source]:
    if not folder.is_dir():
        raise ConfigError(f"input folder {str(folder)!r} does not exist or is not a folder; fix input.folder")
    skip = exclude.resolve() if exclude is not None else None
    out = []
    for path in folder.glob(pattern):
        if TMP_MARKER in path.name or not path.is_file():
            continue
        resolved = path.resolve()
        if skip is not None and resolved.is_relative_to(skip):
            continue
        out.append(_file_source(Path(os.path.normpath(path.absolute()))))
    return out


def _from_list(list_file: Path) -> list[Source]:
    text = read_text_capped(list_file, "input list", MAX_LIST_BYTES, error=ConfigError)
    out = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if "\0" in entry:
            raise ConfigError(f"input list {str(list_file)!r} holds a NUL byte; it is not a text list of paths")
        path = Path(entry).expanduser()
        out.append(_file_source(Path(os.path.normpath(path if path.is_absolute() else list_file.parent / path))))
    return out
