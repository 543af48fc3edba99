"""Where a batch's outputs go: safe scene ids and one folder per scene under the output root.

``<root>/<scene_id>/landcover.tif``, ``confidence.tif``, ``<class>.gpkg`` and
``item.json`` (a STAC Item).  Scene ids come from file stems or STAC item ids,
which may be hostile (``../../etc/x``, absolute paths, control characters):
:func:`safe_name` keeps only ``[A-Za-z0-9._-]``, never starts with a dot or a
dash, and appends a short hash of the original whenever anything was changed,
so two different names never meet by accident; :func:`assign_scene_ids` makes
ids unique across the archive and keeps an id once given.  Every path built
here is checked to resolve inside the root.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from ..atomic import TMP_MARKER
from ..errors import InputError

__all__ = [
    "CONFIDENCE",
    "ITEM",
    "LANDCOVER",
    "LOGS",
    "assign_scene_ids",
    "remove_stale_temporaries",
    "safe_name",
    "scene_dir",
    "vector_name",
]

log = logging.getLogger(__name__)

LANDCOVER = "landcover.tif"
CONFIDENCE = "confidence.tif"
ITEM = "item.json"
#: Folder of per-run log files under the output root (never a scene id).
LOGS = "logs"
MAX_NAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_RESERVED = {LOGS, "manifest.sqlite", "collection.json"}


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def safe_name(raw: str) -> str:
    """A file-name-safe version of ``raw``; a hash suffix is added when anything had to change.

    Accents are dropped (``Zürich`` -> ``Zurich-<hash>``), other characters become ``_``,
    leading dots and dashes go, the length is capped; the empty result becomes ``scene``.
    """
    text = unicodedata.normalize("NFKD", raw)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _UNSAFE.sub("_", text).lstrip(".-")[:MAX_NAME] or "scene"
    if text != raw or text.lower() in _RESERVED or TMP_MARKER in text:
        text = f"{text}-{short_hash(raw)}"
    return text


def assign_scene_ids(raw_ids: Mapping[str, str], existing: Mapping[str, str]) -> dict[str, str]:
    """Scene ids for ``{source: raw id}``: a source keeps its ``existing`` id; new ones get unique safe ids.

    Uniqueness ignores case (output folders may live on a case-insensitive file system).
    Sources are taken in sorted order, so the result does not depend on discovery order.
    """
    taken = {v.lower() for v in existing.values()}
    out: dict[str, str] = {}
    for source in sorted(raw_ids):
        if source in existing:
            out[source] = existing[source]
            continue
        candidate = safe_name(raw_ids[source])
        length = 8
        while candidate.lower() in taken:
            candidate = f"{safe_name(raw_ids[source])}-{short_hash(source, length)}"
            length += 4
        taken.add(candidate.lower())
        out[source] = candidate
    return out


def scene_dir(root: Path, scene_id: str) -> Path:
    """``root/scene_id``, refusing any id or link that would land outside ``root``."""
    if not _SAFE.match(scene_id) or scene_id.lower() in _RESERVED:
        raise InputError(f"scene id {scene_id!r} is not a safe folder name")
    root = Path(root).resolve()
    path = root / scene_id
    if path.resolve().parent != root:
        raise InputError(f"output folder {str(path)!r} resolves outside the output root {str(root)!r}; remove the link")
    return path


def vector_name(class_name: str) -> str:
    """File name of the polygons of one class: ``<safe class name>.gpkg``."""
    return f"{safe_name(class_name)}.gpkg"


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files left under ``root`` by killed runs (names holding the temp marker)."""
    removed = 0
    if not Path(root).is_dir():
        return 0
    for path in Path(root).rglob(f"*{TMP_MARKER}*"):
        if path.is_symlink() or path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
                log.info("removed stale temporary file %s", path)
    return removed
