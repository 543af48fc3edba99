"""Finding the scenes of an archive: a folder and a glob, a list file, or a local STAC catalog."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import TMP_MARKER
from ..errors import ConfigError
from .config import InputConfig
from .stac import read_stac_catalog

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


def discover(config: InputConfig, *, exclude: Path | None = None) -> list[Source]:
    """The scenes named by ``config``, sorted by path; ``exclude`` (the output root) is never searched."""
    if config.folder is not None:
        sources = _from_folder(config.folder, config.glob, exclude)
    elif config.list is not None:
        sources = _from_list(config.list)
    elif config.stac is not None:
        sources = [
            Source(s.href, s.item_id, Path(s.item_href).as_uri(), s.when, s.error)
            for s in read_stac_catalog(config.stac, asset=config.asset)
        ]
    else:
        raise ConfigError("input needs one of folder, list, stac")
    unique: dict[str, Source] = {}
    for source in sources:
        if source.path in unique:
            log.warning("%s is listed more than once; processing it once", source.path)
            continue
        unique[source.path] = source
    return [unique[k] for k in sorted(unique)]


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
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read input list {str(list_file)!r}: {exc.strerror or exc}") from None
    out = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text).expanduser()
        out.append(_file_source(Path(os.path.normpath(path if path.is_absolute() else list_file.parent / path))))
    return out
