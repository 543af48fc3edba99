"""Class schemes and the class table stored in geoseg's land-cover rasters.

A land-cover raster written by geoseg is a single uint8 band of class ids,
with nodata :data:`NODATA`, a GDAL colour table, and the class scheme as JSON
in the ``GEOSEG_CLASSES`` tag, so that later steps (vectorize, evaluate) know
the names behind the ids.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError, UsageError

__all__ = [
    "NODATA",
    "CLASSES_TAG",
    "ClassInfo",
    "parse_classes",
    "classes_to_json",
    "classes_from_json",
    "resolve_classes",
    "PartScheme",
    "PARTS_TAG",
    "parts_to_json",
    "parts_from_json",
    "part_sidecar_path",
    "VECTORIZE_TAG",
    "VECTORIZE_KEYS",
    "VectorizeSettings",
    "parse_vectorize_settings",
    "vectorize_settings_to_json",
    "vectorize_settings_from_json",
]

#: Output nodata value of class rasters; no class may use this id.
NODATA = 255
#: Dataset tag holding the class scheme as JSON.
CLASSES_TAG = "GEOSEG_CLASSES"

_DEFAULT_COLOURS = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (128, 128, 0),
]


def _is_int(value: Any) -> bool:
    """An integer (Python's or numpy's), not a bool and not a float."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class ClassInfo:
    """One class of a scheme: the id written to rasters, a name and an RGB colour."""

    id: int
    name: str
    color: tuple[int, int, int] = (128, 128, 128)

    def __post_init__(self) -> None:
        if not _is_int(self.id) or not 0 <= self.id < NODATA:
            raise ModelError(f"class id {self.id!r} must be an integer in 0..{NODATA - 1} ({NODATA} is nodata)")
        object.__setattr__(self, "id", int(self.id))
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError(f"class {self.id} needs a non-empty name")
        colour = tuple(self.color) if isinstance(self.color, (list, tuple)) else ()
        if len(colour) != 3 or not all(_is_int(c) and 0 <= c <= 255 for c in colour):
            raise ModelError(f"class {self.name!r}: colour {self.color!r} must be three integers 0..255")
        object.__setattr__(self, "color", tuple(int(c) for c in colour))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": list(self.color)}


def parse_classes(classes: Iterable[ClassInfo | Mapping[str, Any] | str]) -> tuple[ClassInfo, ...]:
    """Normalise a class scheme given as ClassInfo objects, dicts or bare names.

    Bare names get ids 0, 1, ... in order and default colours.
    """
    if isinstance(classes, (str, bytes, Mapping)) or not isinstance(classes, Iterable):
        raise ModelError(f"a class scheme is a list of classes, got {classes!r}"[:300])
    out: list[ClassInfo] = []
    for index, item in enumerate(classes):
        if index >= NODATA:
            raise ModelError(f"a class scheme has at most {NODATA} classes (ids 0..{NODATA - 1})")
        if isinstance(item, ClassInfo):
            out.append(item)
        elif isinstance(item, str):
            out.append(ClassInfo(index, item, _DEFAULT_COLOURS[index % len(_DEFAULT_COLOURS)]))
        elif isinstance(item, Mapping):
            unknown = set(item) - {"id", "name", "color"}
            if unknown:
                keys = sorted(map(str, unknown))  # keys may be of mixed types (YAML, JSON numbers and text)
                raise ModelError(f"class entry {dict(item)!r} has unknown keys {keys}; use id, name, color")
            if "id" not in item or "name" not in item:
                raise ModelError(f"class entry {dict(item)!r} needs 'id' and 'name'")
            colour = item.get("color", _DEFAULT_COLOURS[index % len(_DEFAULT_COLOURS)])
            out.append(ClassInfo(item["id"], item["name"], colour))
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


#: Longest class table text read from a raster tag.
MAX_TABLE_TEXT = 2**20


def classes_from_json(text: str) -> tuple[ClassInfo, ...]:
    """A class scheme from its JSON text; a :class:`ModelError` (a ``ValueError``) for anything malformed."""
    if not isinstance(text, str) or len(text) > MAX_TABLE_TEXT:
        raise ModelError(f"a class table is JSON text of at most {MAX_TABLE_TEXT} characters")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"the class table is not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelError("the class table nests lists or objects too deeply to read") from None
    return parse_classes(data)


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
            found = by_id.get(int(key))
            if found is None:
                raise UsageError(f"class id {key} is not in the class table (ids: {sorted(by_id)})")
            cls = found
        else:
            raise UsageError(f"unknown class {w!r}; known classes: {', '.join(c.name for c in scheme)}")
        if cls not in picked:
            picked.append(cls)
    return tuple(picked)


#: Dataset tag of a class raster whose classes hold parts (building body, border, contact), as JSON.
PARTS_TAG = "GEOSEG_PARTS"


@dataclass(frozen=True)
class PartScheme:
    """Output classes that are parts of one class: its ``border`` and the ``contact`` zone where two objects touch.

    The network predicts the body of each object as class ``of`` and its rim as
    ``border`` or ``contact``; people read the three as one class ``of`` (see
    :meth:`geoseg.model.card.ModelCard.display_classes`), and vectorize uses the bodies as seeds
    to split touching objects.
    """

    of: int
    border: int
    contact: int

    def __post_init__(self) -> None:
        ids = (self.of, self.border, self.contact)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or len(set(ids)) != 3:
            raise ModelError(f"a part scheme needs three different class ids (of, border, contact), got {ids}")

    @classmethod
    def parse(cls, value: PartScheme | Mapping[str, Any]) -> PartScheme:
        if isinstance(value, PartScheme):
            return value
        if not isinstance(value, Mapping) or set(value) != {"of", "border", "contact"}:
            raise ModelError(f"a part scheme is a mapping with 'of', 'border' and 'contact' class ids, got {value!r}")
        return cls(**{k: value[k] for k in ("of", "border", "contact")})

    def to_dict(self) -> dict[str, int]:
        return {"of": self.of, "border": self.border, "contact": self.contact}


def parts_to_json(parts: Iterable[PartScheme]) -> str:
    return json.dumps({"parts": [p.to_dict() for p in parts]})


def parts_from_json(text: str) -> tuple[PartScheme, ...]:
    data = json.loads(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("parts"), list):
        raise ValueError("expected {'parts': [...]}")
    return tuple(PartScheme.parse(p) for p in data["parts"])


def part_sidecar_path(raster: str | os.PathLike[str]) -> Path:
    """The part sidecar of a class raster (``<stem>.parts.tif`` beside it): where predict writes it, vectorize reads it.

    It holds the network's own classes (building body, border and contact) on the class raster's grid.
    """
    raster = Path(raster)
    return raster.with_name(f"{raster.stem}.parts{raster.suffix or '.tif'}")


#: Dataset tag of a class raster holding the model's recommended vectorize settings per class name, as JSON.
VECTORIZE_TAG = "GEOSEG_VECTORIZE"
#: The vectorize settings a model may recommend for a class, in square metres (see geoseg.vectorize).
VECTORIZE_KEYS = ("min_area", "min_seed_area")

#: ``{class name: {setting: value}}``: vectorize settings a model recommends for its classes.
VectorizeSettings = Mapping[str, Mapping[str, float]]


def parse_vectorize_settings(value: Any, class_names: Iterable[str]) -> dict[str, dict[str, float]]:
    """``value`` checked as :data:`VectorizeSettings` for classes named ``class_names`` (a ModelError if not)."""
    names = set(class_names)
    if not isinstance(value, Mapping):
        raise ModelError(f"vectorize settings are a mapping of class names to settings, got {value!r}"[:300])
    out: dict[str, dict[str, float]] = {}
    for name, settings in value.items():
        if name not in names:
            raise ModelError(f"vectorize settings name class {name!r}, which is not one of {sorted(names)}")
        if not isinstance(settings, Mapping) or not settings or set(settings) - set(VECTORIZE_KEYS):
            raise ModelError(
                f"vectorize settings of {name!r} must set some of {', '.join(VECTORIZE_KEYS)}, got {settings!r}"[:300]
            )
        checked = {}
        for key, number in settings.items():
            if isinstance(number, bool) or not isinstance(number, numbers.Real) or not 0 <= float(number) < 1e12:
                raise ModelError(f"vectorize setting {name}.{key} must be a number of square metres >= 0, got "
                                 f"{number!r}"[:300])
            checked[key] = float(number)
        out[str(name)] = checked
    return out


def vectorize_settings_to_json(settings: VectorizeSettings) -> str:
    return json.dumps({"classes": {k: dict(v) for k, v in settings.items()}}, sort_keys=True)


def vectorize_settings_from_json(text: str, class_names: Iterable[str]) -> dict[str, dict[str, float]]:
    if len(text) > MAX_TABLE_TEXT:
        raise ValueError(f"the settings are {len(text)} characters long, more than a class table holds")
    data = json.loads(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("classes"), Mapping):
        raise ValueError("expected {'classes': {...}}")
    return parse_vectorize_settings(data["classes"], class_names)
