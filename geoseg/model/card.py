"""The model card: everything needed to run a network correctly on a scene.

A card travels inside every geoseg model file (as JSON in the safetensors
header), so a model file is self-describing: architecture, classes, the input
bands and dtype, normalisation, tile size, ground resolution and nodata policy.
This module is pure Python (no torch), so the CLI can read cards cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..classes import ClassInfo, parse_classes
from ..errors import ModelError

__all__ = ["ModelCard", "Normalization", "CARD_VERSION", "ARCHITECTURES"]

#: Architecture names geoseg can rebuild from a card -> segmentation-models-pytorch class names.
ARCHITECTURES: dict[str, str] = {
    "deeplabv3plus": "DeepLabV3Plus",
    "unet": "Unet",
    "segformer": "Segformer",
}

CARD_VERSION = 1
_DTYPES = {"uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"}
_NODATA_POLICIES = {"mask", "none"}


@dataclass(frozen=True)
class Normalization:
    """Per-band ``(x - mean) / std`` applied to raw pixel values."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
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
        return cls(tuple(value["mean"]), tuple(value["std"]))

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
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int = CARD_VERSION

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "classes", parse_classes(self.classes))
        if isinstance(self.bands, str) or not isinstance(self.bands, Iterable):
            raise ModelError(f"bands must be a list of band names, got {self.bands!r}")
        set_(self, "bands", tuple(str(b) for b in self.bands))
        if not self.bands:
            raise ModelError("a model card needs at least one input band")
        set_(self, "normalization", Normalization.parse(self.normalization))
        if len(self.normalization.mean) != len(self.bands):
            raise ModelError(
                f"normalization has {len(self.normalization.mean)} values but the card lists "
                f"{len(self.bands)} bands {list(self.bands)}"
            )
        if self.dtype not in _DTYPES:
            raise ModelError(f"dtype {self.dtype!r} is not supported; use one of {sorted(_DTYPES)}")
        if not isinstance(self.tile_size, int) or self.tile_size < 8:
            raise ModelError(f"tile_size must be an integer >= 8, got {self.tile_size!r}")
        if self.nodata not in _NODATA_POLICIES:
            raise ModelError(f"nodata policy {self.nodata!r} is not one of {sorted(_NODATA_POLICIES)}")
        if self.resolution is not None:
            set_(self, "resolution", float(self.resolution))
        if self.resolution_range is not None:
            lo, hi = (float(v) for v in self.resolution_range)
            if not 0 < lo <= hi:
                raise ModelError(f"resolution_range must be (low, high) with 0 < low <= high, got {self.resolution_range}")
            set_(self, "resolution_range", (lo, hi))
        set_(self, "arch_params", dict(self.arch_params))
        set_(self, "metadata", dict(self.metadata))

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

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "classes":
                value = [c.to_dict() for c in value]
            elif f.name == "normalization":
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"model card has unknown fields {sorted(unknown)}")
        version = data.get("version", CARD_VERSION)
        if version > CARD_VERSION:
            raise ModelError(f"model card version {version} is newer than this geoseg understands ({CARD_VERSION}); upgrade geoseg")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ModelError(f"model card is incomplete: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model card is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelCard:
        data = self.to_dict()
        data.update(changes)
        return ModelCard.from_dict(data)
