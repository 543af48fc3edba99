"""Class schemes and the class table stored in geoseg's land-cover rasters.

A land-cover raster written by geoseg is a single uint8 band of class ids,
with nodata :data:`NODATA`, a GDAL colour table, and the class scheme as JSON
in the ``GEOSEG_CLASSES`` tag, so that later steps (vectorize, evaluate) know
the names behind the ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError, ModelError

__all__ = [
    "NODATA",
    "CLASSES_TAG",
    "ClassInfo",
    "parse_classes",
    "classes_to_json",
    "classes_from_json",
    "resolve_classes",
]

#: Output nodata value of class rasters; no class may use this id.
NODATA = 255
#: Dataset tag holding the class scheme as JSON.
CLASSES_TAG = "GEOSEG_CLASSES"

_DEFAULT_COLOURS = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (128, 128, 0),
]


@dataclass(frozen=True)
class ClassInfo:
    """One class of a scheme: the id written to rasters, a name and an RGB colour."""

    id: int
    name: str
    color: tuple[int, int, int] = (128, 128, 128)

    def __post_init__(self) -> None:
        if not isinstance(self.id, int) or not 0 <= self.id < NODATA:
            raise ModelError(f"class id {self.id!r} must be an integer in 0..{NODATA - 1} ({NODATA} is nodata)")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError(f"class {self.id} needs a non-empty name")
        colour = tuple(int(c) for c in self.color)
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ModelError(f"class {self.name!r}: colour {self.color!r} must be three integers 0..255")
        object.__setattr__(self, "color", colour)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": list(self.color)}


def parse_classes(classes: Iterable[ClassInfo | Mapping[str, Any] | str]) -> tuple[ClassInfo, ...]:
    """Normalise a class scheme given as ClassInfo objects, dicts or bare names.

    Bare names get ids 0, 1, ... in order and default colours.
    """
    out: list[ClassInfo] = []
    for index, item in enumerate(classes):
        if isinstance(item, ClassInfo):
            out.append(item)
        elif isinstance(item, str):
            out.append(ClassInfo(index, item, _DEFAULT_COLOURS[index % len(_DEFAULT_COLOURS)]))
        elif isinstance(item, Mapping):
            unknown = set(item) - {"id", "name", "color"}
            if unknown:
                raise ModelError(f"class entry {dict(item)!r} has unknown keys {sorted(unknown)}; use id, name, color")
            if "id" not in item or "name" not in item:
                raise ModelError(f"class entry {dict(item)!r} needs 'id' and 'name'")
            colour = item.get("color", _DEFAULT_COLOURS[index % len(_DEFAULT_COLOURS)])
            out.append(ClassInfo(int(item["id"]), str(item["name"]), tuple(colour)))
        else:
            raise ModelError(f"cannot read class entry {item!r}: give a name, a dict or a ClassInfo")
    if not out:
        raise ModelError("a class scheme needs at least one class")
    ids = [c.id for c in out]
    names = [c.name for c in out]
    if len(set(ids)) != len(ids):
        raise ModelError(f"class ids must be unique, got {ids}")
    if len(set(names)) != len(names):
        raise ModelError(f"class names must be unique, got {names}")
    return tuple(out)


def classes_to_json(classes: Iterable[ClassInfo]) -> str:
    return json.dumps([c.to_dict() for c in classes])


def classes_from_json(text: str) -> tuple[ClassInfo, ...]:
    return parse_classes(json.loads(text))


def resolve_classes(scheme: tuple[ClassInfo, ...], wanted: Iterable[str | int] | None) -> tuple[ClassInfo, ...]:
    """Pick classes from ``scheme`` by name or id (ids may be given as digit strings)."""
    if wanted is None:
        return scheme
    by_name = {c.name.lower(): c for c in scheme}
    by_id = {c.id: c for c in scheme}
    picked: list[ClassInfo] = []
    for w in wanted:
        key = w.strip() if isinstance(w, str) else w
        if isinstance(key, str) and key.lower() in by_name:
            cls = by_name[key.lower()]
        elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            cls = by_id.get(int(key))
            if cls is None:
                raise InputError(f"class id {key} is not in the class table (ids: {sorted(by_id)})")
        else:
            raise InputError(f"unknown class {w!r}; known classes: {', '.join(c.name for c in scheme)}")
        if cls not in picked:
            picked.append(cls)
    return tuple(picked)
