"""Batch configuration: a strict, frozen schema for ``geoseg batch`` loaded from YAML.

A config names the input archive, the model, the steps and their options, the
output root, and how to run (scenes in parallel, retries).  Unknown keys and
wrong types are errors naming the key and what is allowed.  Relative paths are
relative to the folder holding the config file (or ``base_dir`` for a mapping),
never to the working directory.  Example::

    input:
      folder: ../../../shared/data     # or  list: scenes.txt  or  stac: catalog/catalog.json
      glob: "*/*_image.tif"
    model: models/buildings.safetensors  # a .safetensors path, or a shipped model name
    steps:
      predict: {overlap: 64, confidence: true}
      vectorize: {classes: [building], min_area: 4.0}
    output: /data/geoseg/nightly
    concurrency: 2
    retries: 2

This module is pure Python (no torch, no dask), so ``geoseg batch status`` stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..prediction.options import PredictOptions, check_device_name
from ..schema import absolute, build, check_settings, output_settings
from ..vectorization.options import DEFAULT_MIN_AREA, DEFAULT_MIN_SEED_AREA, VectorizeOptions

__all__ = [
    "FINGERPRINT_MODES",
    "BatchConfig",
    "InputConfig",
    "PredictStep",
    "StepsConfig",
    "VectorizeStep",
    "load_batch_config",
    "model_is_file",
]

FINGERPRINT_MODES = ("auto", "full", "sampled")


@dataclass(frozen=True)
class InputConfig:
    """Where the scenes are: exactly one of ``folder`` (with ``glob``), ``list`` or ``stac``."""

    #: A folder searched with ``glob`` (``**`` recurses).
    folder: Path | None = None
    glob: str = "*.tif"
    #: A text file with one GeoTIFF path a line (relative to the list file's folder; ``#`` comments).
    list: Path | None = None
    #: A local static STAC catalog (or a single item / item collection JSON); its items' GeoTIFF assets.
    stac: Path | None = None
    #: With ``stac``: the asset key to read (default: the first GeoTIFF asset, preferring role ``data``).
    asset: str | None = None
    #: How inputs are fingerprinted: ``full`` sha256 of every file, ``sampled`` size + first and last MiB,
    #: ``auto`` full up to 256 MiB and sampled above.
    fingerprint: str = "auto"
    #: Read scenes whose path or links lead outside the archive (the folder, or the list's or catalog's folder).
    allow_outside: bool = False

    def __post_init__(self) -> None:
        given = [name for name in ("folder", "list", "stac") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ConfigError(f"input needs exactly one of folder, list, stac; got {given or 'none'}")
        if self.fingerprint not in FINGERPRINT_MODES:
            raise ConfigError(f"input.fingerprint {self.fingerprint!r} is not one of {', '.join(FINGERPRINT_MODES)}")
        if self.asset is not None and self.stac is None:
            raise ConfigError("input.asset only applies to a stac input")
        if not self.glob or Path(self.glob).is_absolute() or ".." in Path(self.glob).parts:
            raise ConfigError(f"input.glob {self.glob!r} must be a relative pattern inside the folder (e.g. **/*.tif)")


@dataclass(frozen=True, kw_only=True)
class PredictStep(PredictOptions):
    """``steps.predict``: the options of :func:`geoseg.predict` and whether to write the confidence raster."""

    #: Also write ``confidence.tif`` (max probability x 255).
    confidence: bool = True

    def __post_init__(self) -> None:
        check_settings(self, "steps.predict.")
        check_device_name(self.device, "steps.predict.device")

    def output_options(self) -> dict[str, Any]:
        """The options that change the output bytes (batch size and read threads do not)."""
        return {**output_settings(self), "confidence": self.confidence}


@dataclass(frozen=True, kw_only=True)
class VectorizeStep(VectorizeOptions):
    """``steps.vectorize``: the options of :func:`geoseg.vectorize` and the classes to write, one GeoPackage each."""

    #: Class names or ids from the model's class table.
    classes: tuple[str | int, ...] = ()

    def __post_init__(self) -> None:
        if not self.classes:
            raise ConfigError("steps.vectorize.classes must name at least one class (e.g. [building])")
        if self.block_size < 64:
            raise ConfigError(f"steps.vectorize.block_size must be >= 64, got {self.block_size}")
        check_settings(self, "steps.vectorize.")

    def output_options(self) -> dict[str, Any]:
        """The options that change the output (the block size does not)."""
        return {"classes": list(self.classes), **output_settings(self)}


@dataclass(frozen=True)
class StepsConfig:
    predict: PredictStep = field(default_factory=PredictStep)
    #: Absent or null: no vector output.
    vectorize: VectorizeStep | None = None


@dataclass(frozen=True)
class BatchConfig:
    """A validated batch configuration; paths are absolute."""

    input: InputConfig
    output: Path
    #: A model file (``.safetensors``, or any value with a ``/``) or a shipped model's short name.
    model: str = "buildings"
    steps: StepsConfig = field(default_factory=StepsConfig)
    #: Scenes processed at the same time.
    concurrency: int = 2
    #: Worker processes of the local Dask cluster (ignored with ``scheduler``).
    workers: int | None = None
    #: Address of an existing Dask scheduler (``--scheduler`` overrides it).
    scheduler: str | None = None
    #: Extra attempts for transient errors (I/O errors, lost workers, timeouts) within one run.
    retries: int = 2
    #: Seconds before the first retry; doubled for each further one.
    retry_backoff: float = 5.0
    #: The manifest database (default ``<output>/manifest.sqlite``).
    manifest: Path | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not 0 <= self.retries <= 20:
            raise ConfigError(f"retries must be in 0..20, got {self.retries}")
        if self.retry_backoff < 0:
            raise ConfigError(f"retry_backoff must be >= 0 seconds, got {self.retry_backoff}")
        if not self.model:
            raise ConfigError("model must name a .safetensors file or a shipped model")

    @property
    def manifest_path(self) -> Path:
        return self.manifest if self.manifest is not None else self.output / "manifest.sqlite"

    def output_options(self) -> dict[str, Any]:
        """Everything in the steps that changes the outputs, as plain JSON data."""
        vec = self.steps.vectorize
        return {"predict": self.steps.predict.output_options(), "vectorize": vec.output_options() if vec else None}

    def steps_hash(self) -> str:
        """sha256 of :meth:`output_options` (part of every scene's idempotency key).

        Vectorize areas left out are hashed as the generic defaults: what they stand for beyond those, the
        model's recommendations, is in the model's digest, also part of every key; so keys made before models
        recommended settings still hold."""
        options = self.output_options()
        vec = options["vectorize"]
        if vec is not None:
            defaults = {"min_area": DEFAULT_MIN_AREA, "min_seed_area": DEFAULT_MIN_SEED_AREA}
            options["vectorize"] = {k: defaults[k] if v is None and k in defaults else v for k, v in vec.items()}
        text = json.dumps(options, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: str | os.PathLike[str] | None = None) -> BatchConfig:
        """Validate a mapping; relative paths are resolved against ``base_dir`` (default: the working directory)."""
        base = Path(base_dir if base_dir is not None else os.getcwd()).resolve()
        config = build(cls, data)
        inp = config.input
        paths: dict[str, Any] = {
            name: absolute(getattr(inp, name), base) for name in ("folder", "list", "stac") if getattr(inp, name)
        }
        return replace(
            config,
            input=replace(inp, **paths),
            output=absolute(config.output, base),
            manifest=absolute(config.manifest, base) if config.manifest is not None else None,
            model=str(absolute(Path(config.model), base)) if model_is_file(config.model) else config.model,
        )


def model_is_file(model: str) -> bool:
    """True if ``model`` names a file (ends in .safetensors or has a path separator), not a shipped model."""
    return model.endswith(".safetensors") or "/" in model or os.sep in model


def load_batch_config(path: str | os.PathLike[str]) -> BatchConfig:
    """Read a YAML batch config; relative paths are relative to the config file's folder."""
    from ..safety.files import read_text_capped
    from ..safety.limits import MAX_CONFIG_BYTES
    from ..safety.yaml_loader import load_yaml

    path = Path(path)
    # A regular file of at most 1 MiB, and YAML without alias bombs: a config is read before anything is checked.
    text = read_text_capped(path, "batch config", MAX_CONFIG_BYTES, error=ConfigError)
    data = load_yaml(text, repr(str(path)))
    if not isinstance(data, Mapping):
        raise ConfigError(f"{str(path)!r} must hold a mapping (input, model, steps, output), not {type(data).__name__}")
    try:
        return BatchConfig.from_dict(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
