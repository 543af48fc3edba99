"""The model card: everything needed to run a network correctly on a scene.

A card travels inside every geoseg model file (as JSON in the safetensors
header), so a model file is self-describing: architecture, classes, the input
bands and dtype, normalisation, tile size, ground resolution and nodata policy.
This module is pure Python (no torch), so the CLI can read cards cheaply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..classes import ClassInfo, PartScheme, parse_classes, parse_vectorize_settings
from ..errors import ModelError

__all__ = ["ModelCard", "Normalization", "PartScheme", "CARD_VERSION", "ARCHITECTURES"]

#: Architecture names geoseg can rebuild from a card -> segmentation-models-pytorch class names.
ARCHITECTURES: dict[str, str] = {
    "deeplabv3plus": "DeepLabV3Plus",
    "unet": "Unet",
    "segformer": "Segformer",
}

CARD_VERSION = 1
#: Largest tile a card may ask for: a tile of 4096 x 4096 x 3 float32 pixels is already 200 MB.
MAX_TILE_SIZE = 4096
_DTYPES = {"uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"}
_NODATA_POLICIES = {"mask", "none"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(what: str, values: Any) -> tuple[float, ...]:
    """A tuple of finite floats from a list of numbers; a :class:`ModelError` for anything else."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ModelError(f"{what} must be a list of numbers, got {values!r}")
    out = tuple(values)
    if not all(_is_number(v) and math.isfinite(v) for v in out):
        raise ModelError(f"{what} must hold finite numbers, got {list(out)!r}")
    return tuple(float(v) for v in out)


#: JSON types of each card field (``None`` allowed where the default is ``None``).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "classes": (list, tuple),
    "bands": (list, tuple),
    "normalization": (Mapping,),
    "architecture": (str,),
    "encoder": (str, type(None)),
    "arch_params": (Mapping,),
    "dtype": (str,),
    "tile_size": (int,),
    "resolution": (int, float, type(None)),
    "resolution_range": (list, tuple, type(None)),
    "nodata": (str,),
    "ignore_index": (int, type(None)),
    "parts": (list, tuple),
    "vectorize": (Mapping,),
    "metadata": (Mapping,),
    "version": (int,),
}


def _check_field_types(data: Mapping[str, Any]) -> None:
    """Every field of a card read from JSON has its JSON type (no text for numbers, no list for an object)."""
    for name, value in data.items():
        kinds = _FIELD_TYPES.get(name)
        if kinds is None:
            continue
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join("null" if k is type(None) else k.__name__.replace("Mapping", "object")
                                 .replace("tuple", "list").replace("str", "text").replace("int", "integer")
                                 for k in kinds if k is not tuple or list not in kinds)
            raise ModelError(f"model card field {name!r} must be {wanted}, got {value!r}"[:300])


@dataclass(frozen=True)
class Normalization:
    """Per-band ``(x - mean) / std`` applied to raw pixel values."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean = _numbers("normalization mean", self.mean)
        std = _numbers("normalization std", self.std)
        if len(mean) != len(std):
            raise ModelError(f"normalization has {len(mean)} means but {len(std)} stds")
        if any(not s > 0 for s in std):
            raise ModelError(f"normalization std must be positive, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def parse(cls, value: Normalization | Mapping[str, Any]) -> Normalization:
        if isinstance(value, Normalization):
            return value
        if not isinstance(value, Mapping) or set(value) != {"mean", "std"}:
            raise ModelError(f"normalization must be a mapping with 'mean' and 'std', got {value!r}")
        return cls(_numbers("normalization mean", value["mean"]), _numbers("normalization std", value["std"]))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class ModelCard:
    """What a network expects and produces.

    ``classes`` map output channel ``i`` to ``classes[i].id`` in written rasters.
    ``bands`` name the input bands in order (alpha bands are never inputs).
    ``nodata`` is the policy for invalid input pixels: ``"mask"`` excludes them
    (weight 0 when stitching, nodata in the output); ``"none"`` treats every
    pixel as valid.
    """

    classes: tuple[ClassInfo, ...]
    bands: tuple[str, ...]
    normalization: Normalization
    architecture: str = "custom"
    encoder: str | None = None
    arch_params: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "uint8"
    tile_size: int = 512
    resolution: float | None = None
    resolution_range: tuple[float, float] | None = None
    nodata: str = "mask"
    ignore_index: int | None = None
    #: Classes that are parts of another class (building border and contact); empty for plain class maps.
    parts: tuple[PartScheme, ...] = ()
    #: Vectorize settings this model recommends per class name (``min_area``, ``min_seed_area``, in m²), chosen
    #: on places it was not trained on; predict writes them into the class raster, vectorize uses them by default.
    vectorize: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int = CARD_VERSION

    def __post_init__(self) -> None:
        try:
            self._check()
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"model card is malformed: {exc}") from None

    def _check(self) -> None:
        set_ = object.__setattr__
        set_(self, "classes", parse_classes(self.classes))
        if isinstance(self.bands, str) or not isinstance(self.bands, Iterable):
            raise ModelError(f"bands must be a list of band names, got {self.bands!r}")
        set_(self, "bands", tuple(self.bands))
        if not all(isinstance(b, str) and b for b in self.bands):
            raise ModelError(f"bands must be a list of band names, got {list(self.bands)!r}")
        if not self.bands:
            raise ModelError("a model card needs at least one input band")
        set_(self, "normalization", Normalization.parse(self.normalization))
        if len(self.normalization.mean) != len(self.bands):
            raise ModelError(
                f"normalization has {len(self.normalization.mean)} values but the card lists "
                f"{len(self.bands)} bands {list(self.bands)}"
            )
        if not isinstance(self.dtype, str) or self.dtype not in _DTYPES:
            raise ModelError(f"dtype {self.dtype!r} is not supported; use one of {sorted(_DTYPES)}")
        tile = self.tile_size
        if isinstance(tile, bool) or not isinstance(tile, int) or not 8 <= tile <= MAX_TILE_SIZE:
            raise ModelError(f"tile_size must be an integer in 8..{MAX_TILE_SIZE}, got {self.tile_size!r}")
        if not isinstance(self.architecture, str) or not (self.encoder is None or isinstance(self.encoder, str)):
            raise ModelError(f"architecture and encoder must be names, got {self.architecture!r} and {self.encoder!r}")
        if not isinstance(self.nodata, str) or self.nodata not in _NODATA_POLICIES:
            raise ModelError(f"nodata policy {self.nodata!r} is not one of {sorted(_NODATA_POLICIES)}")
        if self.resolution is not None:
            (resolution,) = _numbers("resolution", [self.resolution])
            if resolution <= 0:
                raise ModelError(f"resolution must be a positive number of metres, got {self.resolution!r}")
            set_(self, "resolution", resolution)
        if self.resolution_range is not None:
            bounds = _numbers("resolution_range", self.resolution_range)
            if len(bounds) != 2:
                raise ModelError(f"resolution_range must be two numbers (low, high), got {list(bounds)}")
            lo, hi = bounds
            if not 0 < lo <= hi:
                raise ModelError(
                    f"resolution_range must be (low, high) with 0 < low <= high, got {self.resolution_range}"
                )
            set_(self, "resolution_range", (lo, hi))
        ignore = self.ignore_index
        if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, int) or not 0 <= ignore <= 255):
            raise ModelError(f"ignore_index must be a class id 0..255 or null, got {self.ignore_index!r}")
        if not isinstance(self.arch_params, Mapping) or not isinstance(self.metadata, Mapping):
            raise ModelError("arch_params and metadata must be mappings (JSON objects)")
        set_(self, "arch_params", dict(self.arch_params))
        set_(self, "metadata", dict(self.metadata))
        if isinstance(self.parts, Mapping):
            raise ModelError(f"parts must be a list of part schemes, got {self.parts!r}")
        set_(self, "parts", tuple(PartScheme.parse(p) for p in self.parts))
        ids = set(self.class_ids)
        used: list[int] = []
        for p in self.parts:
            missing = [i for i in (p.of, p.border, p.contact) if i not in ids]
            if missing:
                raise ModelError(
                    f"part scheme {p.to_dict()} names class ids {missing} that are not in the card {sorted(ids)}"
                )
            used += [p.of, p.border, p.contact]
        if len(set(used)) != len(used):
            raise ModelError(f"part schemes share class ids: {[p.to_dict() for p in self.parts]}")
        set_(self, "vectorize", parse_vectorize_settings(self.vectorize, (c.name for c in self.display_classes)))

    @property
    def rebuildable(self) -> bool:
        """Whether geoseg can rebuild the network from this card alone."""
        return self.architecture.lower() in ARCHITECTURES

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def display_classes(self) -> tuple[ClassInfo, ...]:
        """The classes people see in a class map: every class but the part classes (border, contact)."""
        hidden = {i for p in self.parts for i in (p.border, p.contact)}
        return tuple(c for c in self.classes if c.id not in hidden)

    def display_id(self, class_id: int) -> int:
        """The class id shown for ``class_id``: a border or contact id folds into its object's id."""
        for p in self.parts:
            if class_id in (p.border, p.contact):
                return p.of
        return class_id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "classes":
                value = [c.to_dict() for c in value]
            elif f.name == "normalization":
                value = value.to_dict()
            elif f.name == "parts":
                if not value:  # cards without parts read as before, also by older geoseg versions
                    continue
                value = [p.to_dict() for p in value]
            elif f.name == "vectorize":
                if not value:  # likewise
                    continue
                value = {k: dict(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        if not isinstance(data, Mapping):
            raise ModelError(f"a model card is a JSON object of fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"model card has unknown fields {sorted(map(str, unknown))[:20]}")
        _check_field_types(data)
        version = data.get("version", CARD_VERSION)
        if version < 1:
            raise ModelError(f"model card version must be a positive integer, got {version!r}")
        if version > CARD_VERSION:
            raise ModelError(
                f"model card version {version} is newer than this geoseg understands ({CARD_VERSION}); upgrade geoseg"
            )
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ModelError(f"model card is incomplete: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        if not isinstance(text, str):
            raise ModelError(f"a model card is JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model card is not valid JSON: {exc}") from None
        except RecursionError:
            raise ModelError("model card nests lists or objects too deeply to read") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelCard:
        data = self.to_dict()
        data.update(changes)
        return ModelCard.from_dict(data)
