"""Training with partial labels: buildings known everywhere, vehicles only inside labelled crops.

Vehicle outlines exist only inside ``labelled_areas`` (crops labelled completely);
building outlines (OpenStreetMap) cover whole scenes.  What each pixel of a
scene tells the network:

============================  ==========================================  ==========
where                         known                                       label id
============================  ==========================================  ==========
building polygon              building (body, border or contact)          ``1 3 4``
labelled crop, vehicle        vehicle (body, border or contact)           ``2 5 6``
labelled crop, nothing drawn  background                                  ``0``
outside the crops             *not a building*: background or vehicle     ``10``
``uncertain`` polygons        nothing                                     ``255``
held-out area, image nodata   nothing                                     ``255``
============================  ==========================================  ==========

Pixels labelled ``10`` carry a *candidate set*, not a class: the loss
(:class:`CandidateSetLoss`) rewards the probability the network gives the
whole set, ``-log(p_background + p_vehicle)``, so they teach "this is not a
building" and never "this car is background".  A vehicle's border and contact
parts are left out of the set (learnt inside the crops only): free outside,
the network used them as an edge class along every building.  A class prior
keeps vehicles rare where nobody looked: at most ``vehicle_prior`` of a batch's
unlabelled pixels, on average (positive-unlabelled learning).  Every other
labelled pixel is ordinary cross-entropy.

Touching objects: buildings and vehicles are both split into body, border and
contact targets with :func:`geoseg.training.targets.part_targets` (the
training stage's part design; the card lists both part schemes).  A
prediction's vehicle bodies are separate 4-connected objects even where cars
are parked side by side; :mod:`geoseg.vectorization.rectangles` grows each
body back by the border width and fits an oriented rectangle.

:func:`train_partial` trains such a model on the CPU or a GPU with Lightning,
reusing the training stage's dataset, sampler, augmentation and task; the
configuration is :class:`PartialTrainConfig` (``configs/train/vehicles.yaml``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..atomic import atomic_path
from ..classes import NODATA, ClassInfo
from ..errors import ConfigError, LabelError
from ..io.rasters import SceneInfo, inspect_scene
from ..io.vectors import read_polygon_layer
from ..tiling import PixelWindow

__all__ = [
    "BACKGROUND",
    "SamplerSettings",
    "BUILDING",
    "CLASSES",
    "CandidateSetLoss",
    "NOT_BUILDING",
    "PartialScene",
    "PartialTrainConfig",
    "PARTS",
    "VEHICLE",
    "VEHICLE_BORDER",
    "VEHICLE_CONTACT",
    "build_label_raster",
    "label_codes",
    "load_partial_config",
    "train_partial",
]

log = logging.getLogger(__name__)

BACKGROUND, BUILDING, VEHICLE = 0, 1, 2
BUILDING_BORDER, BUILDING_CONTACT, VEHICLE_BORDER, VEHICLE_CONTACT = 3, 4, 5, 6
#: Label id of pixels known not to be a building, but not known to be free of vehicles.
NOT_BUILDING = 10
#: The classes of a buildings-and-vehicles model, in output-channel order (ids equal channels).
CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(BACKGROUND, "background", (0, 0, 0)),
    ClassInfo(BUILDING, "building", (230, 25, 75)),
    ClassInfo(VEHICLE, "vehicle", (0, 200, 255)),
    ClassInfo(BUILDING_BORDER, "building_border", (255, 160, 0)),
    ClassInfo(BUILDING_CONTACT, "building_contact", (255, 255, 0)),
    ClassInfo(VEHICLE_BORDER, "vehicle_border", (0, 90, 255)),
    ClassInfo(VEHICLE_CONTACT, "vehicle_contact", (180, 0, 255)),
)
#: The card's part schemes: border and contact classes of buildings and of vehicles.
PARTS: tuple[dict[str, int], ...] = (
    {"of": BUILDING, "border": BUILDING_BORDER, "contact": BUILDING_CONTACT},
    {"of": VEHICLE, "border": VEHICLE_BORDER, "contact": VEHICLE_CONTACT},
)
#: Candidate sets of the set-valued label ids (output channels).  Outside the crops a pixel may be background or
#: vehicle, but not a vehicle's border or contact part: those are learnt inside the crops only.  Free there, they
#: become a ready-made "edge" class the network draws along every building outline.
CANDIDATE_SETS: dict[int, tuple[int, ...]] = {
    NOT_BUILDING: (BACKGROUND, VEHICLE),
}


# ---------------------------------------------------------------- labels


@dataclass(frozen=True)
class LabelStats:
    """Pixel counts per label id of one label raster, and what was drawn."""

    path: str
    pixels: dict[int, int]
    vehicles: int
    labelled_areas: int
    uncertain: int


def _read_layer(path: Path, layer: str | None, crs: Any, what: str) -> Any:
    """The layer's polygons in ``crs``, through the one vector reader (format check, repair policy)."""
    loaded = read_polygon_layer(path, target_crs=crs, layer=layer, what=what, error=LabelError)
    for note in loaded.notes:
        log.warning("%s", note)
    return loaded.frame


def build_label_raster(
    image: SceneInfo,
    buildings: str | os.PathLike[str],
    vehicles: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    widths: Mapping[str, float],
    exclude: Sequence[float] | None = None,
    building_column: str = "class_id",
) -> LabelStats:
    """Burn the partial label raster (ids in the module docstring) of one scene onto ``image``'s grid.

    ``buildings``: polygons, every feature a building (``building_column`` is
    not read beyond checking it exists).  ``vehicles``: a GeoPackage with the
    layers ``vehicles`` (one or more pieces per ``vehicle_uid``),
    ``labelled_areas`` and ``uncertain``.  ``widths``: ``building_border``,
    ``building_contact``, ``vehicle_border``, ``vehicle_contact`` in metres.
    ``exclude``: ``[minx, miny, maxx, maxy]`` in the image CRS left unlabelled
    (a held-out area).
    """
    import rasterio
    import shapely
    from rasterio.features import rasterize

    from .targets import part_targets

    crs = image.crs
    shape = (image.height, image.width)
    transform = image.affine
    b = _read_layer(Path(buildings), None, crs, "building labels")
    if building_column not in b.columns:
        raise LabelError(f"building labels {str(buildings)!r} have no {building_column!r} column")
    bgeoms = b.geometry.to_numpy()
    v = _read_layer(Path(vehicles), "vehicles", crs, "vehicle labels")
    areas = _read_layer(Path(vehicles), "labelled_areas", crs, "vehicle labels")
    uncertain = _read_layer(Path(vehicles), "uncertain", crs, "vehicle labels")
    if not len(areas):
        raise LabelError(f"{str(vehicles)!r} has no labelled_areas: nothing says where vehicles were looked for")
    key = "vehicle_uid" if "vehicle_uid" in v.columns else None
    groups = v.dissolve(by=key).geometry.to_numpy() if key else v.geometry.to_numpy()

    def burn(geoms: Any, value: int = 1, *, dtype: str = "uint8") -> np.ndarray:
        geoms = [g for g in geoms if g is not None and not g.is_empty]
        if not geoms:
            return np.zeros(shape, dtype=dtype)
        return rasterize(((g, value) for g in geoms), out_shape=shape, transform=transform, fill=0, dtype=dtype)

    def instances(geoms: Any) -> np.ndarray:
        geoms = np.asarray([g for g in geoms if g is not None and not g.is_empty], dtype=object)
        if not len(geoms):
            return np.zeros(shape, dtype=np.int32)
        order = np.argsort(-shapely.area(geoms), kind="stable")  # small objects burnt last, on top
        return rasterize(((geoms[i], k + 1) for k, i in enumerate(order)), out_shape=shape, transform=transform,
                         fill=0, dtype="int32")

    if image.resolution_m is None:
        raise LabelError(f"{image.path!r}: ground resolution unknown, cannot set border and contact widths")
    px = image.resolution_m
    in_area = burn(areas.geometry).astype(bool)
    houses = instances(bgeoms)
    cars = instances(groups)
    cars[~in_area] = 0
    labels = np.full(shape, NOT_BUILDING, dtype=np.uint8)
    labels[in_area] = BACKGROUND
    for inst, body, border, contact in ((houses, BUILDING, BUILDING_BORDER, BUILDING_CONTACT),
                                        (cars, VEHICLE, VEHICLE_BORDER, VEHICLE_CONTACT)):
        name = CLASSES[body].name
        parts = part_targets(inst, border_px=widths[f"{name}_border"] / px, contact_px=widths[f"{name}_contact"] / px,
                             body=body, border=border, contact=contact)
        labels[inst > 0] = parts[inst > 0]
    if len(uncertain):
        labels[burn(uncertain.geometry).astype(bool)] = NODATA
    if exclude is not None:
        minx, miny, maxx, maxy = exclude
        labels[burn([shapely.box(minx, miny, maxx, maxy)]).astype(bool)] = NODATA
    with rasterio.open(image.path) as ds:
        labels[ds.dataset_mask() == 0] = NODATA
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, overwrite=True) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=image.width, height=image.height, count=1, dtype="uint8", crs=crs,
        transform=transform, nodata=NODATA, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    ) as dst:
        dst.write(labels, 1)
    ids, counts = np.unique(labels, return_counts=True)
    pixels = {int(i): int(c) for i, c in zip(ids, counts, strict=True)}
    return LabelStats(str(out), pixels, len(groups), len(areas), len(uncertain))


def label_codes(num_classes: int = len(CLASSES)) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Look-up tables label id -> target code: for training (sets as codes ``num_classes + k``) and for scoring.

    Returns ``(train_lut, exact_lut, sets)``; ``exact_lut`` maps set-valued ids to the ignore index.
    """
    from .losses import IGNORE_INDEX

    train = np.full(NODATA + 1, IGNORE_INDEX, dtype=np.int64)
    exact = np.full(NODATA + 1, IGNORE_INDEX, dtype=np.int64)
    for channel, cls in enumerate(CLASSES[:num_classes]):
        train[cls.id] = exact[cls.id] = channel
    sets = []
    for k, (label, members) in enumerate(sorted(CANDIDATE_SETS.items())):
        train[label] = num_classes + k
        sets.append(tuple(members))
    return train, exact, sets


# ---------------------------------------------------------------- loss


def _candidate_loss_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn

    from .losses import IGNORE_INDEX, DiceLoss

    class _CandidateSetLoss(nn.Module):
        """Cross-entropy over candidate sets, plus ``dice_weight`` x Dice over the exactly labelled pixels.

        Targets ``0..C-1`` are classes; ``C + k`` is the candidate set ``sets[k]``, scored by
        ``-log sum_{c in set} p_c``; :data:`IGNORE_INDEX` adds nothing.  ``weight`` gives one weight
        per class (set members share the set's mean weight).

        A class prior (positive-unlabelled learning): the set loss alone leaves the split of a set
        pixel between its members free, so nothing keeps the network from calling large unlabelled
        areas "vehicle".  With ``prior_channels``, ``prior_weight`` x ``max(0, m - prior)`` is added,
        ``m`` being the mean probability of ``prior_channels`` over the batch's set pixels: vehicles
        may cover up to ``prior`` of the unlabelled area, no single pixel is told it is no vehicle.
        """

        mask: Tensor
        code_weight: Tensor

        def __init__(self, num_classes: int, sets: Sequence[Sequence[int]], *, weight: Sequence[float] | None = None,
                     dice_weight: float = 0.5, prior_channels: Sequence[int] = (), prior: float = 0.0,
                     prior_weight: float = 0.0) -> None:
            super().__init__()
            n = num_classes + len(sets)
            mask = torch.full((n, num_classes), float("-inf"))
            for c in range(num_classes):
                mask[c, c] = 0.0
            for k, members in enumerate(sets):
                if not members or any(not 0 <= m < num_classes for m in members):
                    raise ValueError(f"candidate set {members} must name classes 0..{num_classes - 1}")
                mask[num_classes + k, list(members)] = 0.0
            w = torch.ones(num_classes) if weight is None else torch.as_tensor(weight, dtype=torch.float32)
            codes_w = torch.cat([w, torch.stack([w[list(m)].mean() for m in sets])]) if sets else w
            self.register_buffer("mask", mask)
            self.register_buffer("code_weight", codes_w)
            self.num_classes = num_classes
            self.dice = DiceLoss() if dice_weight > 0 else None
            self.dice_weight = float(dice_weight)
            self.prior_channels = [int(c) for c in prior_channels]
            self.prior = float(prior)
            self.prior_weight = float(prior_weight)

        def forward(self, logits: Tensor, target: Tensor) -> Tensor:
            labelled = target != IGNORE_INDEX
            if not labelled.any():
                return logits.sum() * 0.0
            logp = F.log_softmax(logits.float(), dim=1).movedim(1, -1)[labelled]  # (P, C)
            codes = target[labelled]
            picked = torch.logsumexp(logp + self.mask[codes], dim=1)
            w = self.code_weight[codes]
            loss = (w * -picked).sum() / w.sum()
            if self.dice is not None:
                exact = torch.where(target < self.num_classes, target, torch.full_like(target, IGNORE_INDEX))
                loss = loss + self.dice_weight * self.dice(logits, exact)
            unlabelled = codes >= self.num_classes
            if self.prior_channels and self.prior_weight > 0 and unlabelled.any():
                share = logp[unlabelled][:, self.prior_channels].exp().sum(dim=1).mean()
                loss = loss + self.prior_weight * torch.relu(share - self.prior)
            return loss

    return _CandidateSetLoss


def CandidateSetLoss(num_classes: int, sets: Sequence[Sequence[int]], **kwargs: Any) -> Any:  # noqa: N802
    """Build the candidate-set loss (a torch module; torch is imported only when it is built)."""
    return _candidate_loss_class()(num_classes, sets, **kwargs)


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PartialScene:
    name: str
    image: Path
    buildings: Path
    vehicles: Path
    #: ``[minx, miny, maxx, maxy]`` in the image CRS left out of training (e.g. the demo crop).
    exclude: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class SamplerSettings:
    kind: Literal["balanced", "uniform"] = "balanced"
    power: float = 0.7
    max_weight_ratio: float = 50.0
    #: Tile index step in pixels.
    stride: int = 32
    min_labelled_share: float = 0.05


@dataclass(frozen=True)
class PartialTrainConfig:
    scenes: tuple[PartialScene, ...]
    data_root: Path | None = None
    #: Ground resolution the scenes are resampled to (metres per pixel).
    resolution: float = 0.15
    resolution_range: tuple[float, float] = (0.075, 0.3)
    #: Part widths in metres (see :func:`geoseg.training.targets.part_targets`).
    building_border: float = 0.45
    building_contact: float = 0.9
    vehicle_border: float = 0.3
    vehicle_contact: float = 0.45
    #: Tiles of ``tile_size`` are read; random rescaling by a factor in ``scale`` crops them to ``crop`` pixels.
    tile_size: int = 128
    crop: int = 128
    scale: tuple[float, float] | None = None
    #: Tile size written into the model card for prediction.
    inference_tile_size: int = 256
    encoder: Literal["mobilenet_v2"] = "mobilenet_v2"
    decoder_channels: tuple[int, ...] = (64, 32, 32, 16, 16)
    #: Leading encoder stages kept frozen at their ImageNet weights (0: train all).
    frozen_stages: int = 4
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    #: Class weights of the cross-entropy, one per class of :data:`CLASSES`.
    class_weights: tuple[float, ...] = (1.0, 1.0, 2.0, 1.0, 1.5, 2.0, 2.0)
    dice_weight: float = 0.5
    #: Vehicles (body, border, contact) may take up to this share of the unlabelled non-building pixels of a
    #: batch; above it, ``vehicle_prior_weight`` x the excess is added to the loss (0: no prior).
    vehicle_prior: float = 0.02
    vehicle_prior_weight: float = 2.0
    steps: int = 100
    batch_size: int = 8
    lr: float = 0.005
    weight_decay: float = 0.0001
    #: Share of training tiles blurred (a 2x coarser look, like 30 cm imagery).
    blur: float = 0.25
    brightness: float = 0.15
    contrast: float = 0.15
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.scenes:
            raise ConfigError("scenes: give at least one scene")
        names = [s.name for s in self.scenes]
        if len(set(names)) != len(names):
            raise ConfigError(f"scene names must be unique, got {names}")
        if self.crop % 32 or self.inference_tile_size % 32 or self.tile_size < self.crop:
            raise ConfigError("crop and inference_tile_size must be multiples of 32, tile_size >= crop")
        if len(self.class_weights) != len(CLASSES):
            raise ConfigError(f"class_weights: give {len(CLASSES)} numbers ({', '.join(c.name for c in CLASSES)})")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be >= 1")


def load_partial_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> PartialTrainConfig:
    """Read a partial-label training config (YAML, strict keys); relative paths start at ``data_root``."""
    import yaml

    from ..schema import build
    from .config import expand_env

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    data.update(dict(overrides or {}))
    base = path.parent
    if data.get("data_root") is not None:
        root = Path(expand_env(str(data["data_root"])))
        data["data_root"] = str(root if root.is_absolute() else (base / root).resolve())
        base = Path(data["data_root"])
    for scene in data.get("scenes") or []:
        for key in ("image", "buildings", "vehicles"):
            if key in scene:
                p = Path(expand_env(str(scene[key])))
                scene[key] = str(p if p.is_absolute() else base / p)
    cfg = build(PartialTrainConfig, data, "")
    assert isinstance(cfg, PartialTrainConfig)
    return cfg


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class PreparedScene:
    name: str
    info: SceneInfo
    labels: str
    stats: LabelStats


def prepare_scenes(cfg: PartialTrainConfig, cache: Path) -> list[PreparedScene]:
    """Resample each scene to ``cfg.resolution`` and burn its partial label raster (both cached in ``cache``)."""
    from ..io.resample import resampled_copy

    out = []
    cache.mkdir(parents=True, exist_ok=True)
    for scene in cfg.scenes:
        info = inspect_scene(scene.image)
        if info.resolution_m is not None and abs(info.resolution_m / cfg.resolution - 1) > 0.02:
            info = inspect_scene(resampled_copy(info, cfg.resolution, cache))
        widths = {k: getattr(cfg, k) for k in ("building_border", "building_contact", "vehicle_border",
                                               "vehicle_contact")}
        tag = "-".join(f"{w:g}" for w in widths.values())
        labels = cache / f"{scene.name}.labels.{cfg.resolution:g}m.{tag}.tif"
        stats = build_label_raster(info, scene.buildings, scene.vehicles, labels, widths=widths, exclude=scene.exclude)
        log.info("%s: labels %s", scene.name, stats.pixels)
        out.append(PreparedScene(scene.name, info, str(labels), stats))
    return out


def tile_histograms(scenes: Sequence[PreparedScene], tile_size: int, stride: int, lut: np.ndarray, codes: int,
                    min_share: float, exclude_blocks: Mapping[int, Sequence[PixelWindow]] | None = None,
                    ) -> tuple[list[tuple[int, PixelWindow]], np.ndarray]:
    """Every tile (stride ``stride``) with enough labelled pixels, and its histogram over target codes."""
    import rasterio

    windows, hists = [], []
    for k, scene in enumerate(scenes):
        with rasterio.open(scene.labels) as ds:
            labels = ds.read(1)
        codes_map = lut[labels]
        h, w = labels.shape
        rows = list(range(0, max(h - tile_size, 0) + 1, stride))
        cols = list(range(0, max(w - tile_size, 0) + 1, stride))
        for r in rows:
            for c in cols:
                block = codes_map[r : r + tile_size, c : c + tile_size]
                known = block[block >= 0]
                if known.size < min_share * tile_size * tile_size:
                    continue
                windows.append((k, PixelWindow(r, c, tile_size, tile_size)))
                hists.append(np.bincount(known, minlength=codes)[:codes])
    return windows, np.asarray(hists, dtype=np.int64).reshape(-1, codes)


# ---------------------------------------------------------------- training


def _blur(image: Any, generator: Any, share: float) -> Any:
    """Blur a random ``share`` of the batch by a 2x down-and-up sampling (a coarser, softer look)."""
    import torch
    import torch.nn.functional as F

    if share <= 0:
        return image
    pick = torch.rand(image.shape[0], generator=generator) < share
    if not pick.any():
        return image
    idx = pick.nonzero().flatten().to(image.device)
    sub = image[idx]
    soft = F.interpolate(F.avg_pool2d(sub, 2), size=sub.shape[-2:], mode="bilinear", align_corners=False)
    out = image.clone()
    out[idx] = soft
    return out


#: Where each resolution stage of an encoder ends, as positions in its ``features`` sequence.
_STAGE_ENDS = {"mobilenet_v2": (2, 4, 7, 14, 19)}


def _freeze(network: Any, encoder: str, stages: int) -> int:
    """Freeze the weights of the first ``stages`` resolution stages of the encoder; returns how many were frozen.

    Batch-norm statistics keep adapting to the training imagery.
    """
    if stages <= 0:
        return 0
    ends = _STAGE_ENDS.get(encoder)
    if ends is None:
        raise ConfigError(f"frozen_stages is not supported for encoder {encoder!r}; set it to 0")
    frozen = 0
    for module in list(network.encoder.features)[: ends[min(stages, len(ends)) - 1]]:
        for p in module.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


@dataclass(frozen=True)
class PartialTrainResult:
    model: Path
    report: Path
    seconds: float


def train_partial(
    cfg: PartialTrainConfig,
    out: str | os.PathLike[str],
    *,
    holdout: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = False,
) -> PartialTrainResult:
    """Train a buildings-and-vehicles model on ``cfg``'s scenes, leaving out the scenes named in ``holdout``.

    A fixed budget of ``cfg.steps`` batches with a one-cycle schedule; the last
    weights are exported (nothing is selected on held-out data, so a held-out
    scene stays unseen).  Writes ``out`` and ``<out stem>.report.json``.
    """
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader

    from ..classes import PartScheme
    from ..model.card import ModelCard, Normalization
    from ..model.network import Model, save_model
    from ..model.pretrained import imagenet_normalization, load_imagenet_encoder
    from ..version import __version__
    from .augment import Augmenter
    from .dataset import SceneTiles
    from .sampling import TileSampler, expected_class_share, tile_weights
    from .task import SegmentationTask

    started = time.perf_counter()
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"the model file must end in .safetensors, got {out.name!r}")
    unknown = set(holdout) - {s.name for s in cfg.scenes}
    if unknown:
        raise ConfigError(f"holdout names {sorted(unknown)} are not scenes ({', '.join(s.name for s in cfg.scenes)})")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cache = out.with_name(out.stem + ".run")
    all_scenes = prepare_scenes(cfg, cache.parent / "partial-labels-cache")
    scenes = [s for s in all_scenes if s.name not in set(holdout)]
    if not scenes:
        raise ConfigError("every scene is held out; nothing to train on")
    n = len(CLASSES)
    train_lut, _, sets = label_codes(n)
    codes = n + len(sets)
    windows, hists = tile_histograms(scenes, cfg.tile_size, cfg.sampler.stride, train_lut, codes,
                                     cfg.sampler.min_labelled_share)
    weights = tile_weights(hists, kind=cfg.sampler.kind, power=cfg.sampler.power,
                           max_ratio=cfg.sampler.max_weight_ratio)
    norm = Normalization.parse(imagenet_normalization(cfg.encoder))
    card = ModelCard(
        classes=CLASSES, bands=("red", "green", "blue"), normalization=norm, architecture="unet", encoder=cfg.encoder,
        arch_params={"decoder_channels": list(cfg.decoder_channels)}, dtype="uint8", tile_size=cfg.inference_tile_size,
        resolution=cfg.resolution, resolution_range=cfg.resolution_range, nodata="mask", ignore_index=None,
        parts=tuple(PartScheme.parse(p) for p in PARTS),
    )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dataset = SceneTiles([s.info for s in scenes], [s.labels for s in scenes], normalization=card.normalization,
                         lut=train_lut)
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = TileSampler(dataset, windows, weights, length=cfg.steps * cfg.batch_size, generator=generator)
    loader = DataLoader(dataset, sampler=sampler, batch_size=cfg.batch_size, num_workers=0)
    loss = CandidateSetLoss(n, sets, weight=cfg.class_weights, dice_weight=cfg.dice_weight,
                            prior_channels=(VEHICLE, VEHICLE_BORDER, VEHICLE_CONTACT), prior=cfg.vehicle_prior,
                            prior_weight=cfg.vehicle_prior_weight)
    augmenter = Augmenter(flips=True, rotate90=True, brightness=cfg.brightness, contrast=cfg.contrast,
                          rare_channels=(VEHICLE,), rare_strength=1.5,
                          scale=None if cfg.scale is None else (cfg.scale[0], cfg.scale[1]),
                          crop=cfg.crop if cfg.scale else None)

    blur_share = cfg.blur

    class _Task(SegmentationTask):
        def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
            batch = super().on_after_batch_transfer(batch, dataloader_idx)
            if self.trainer is not None and self.trainer.training:
                batch = {**batch, "image": _blur(batch["image"], self.aug_generator, blur_share)}
            return batch

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            if (batch_idx + 1) % 20 == 0:
                log.info("step %d/%d, loss %.4f, %.0f s", batch_idx + 1, cfg.steps, float(outputs["loss"]),
                         time.perf_counter() - started)

        def on_train_epoch_end(self) -> None:
            total, count = self._train_loss.tolist()
            self.history.append({"epoch": int(self.current_epoch), "train_loss": total / count if count else None,
                                 "seconds": time.perf_counter() - self._epoch_started})

    task = _Task(card, loss, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="onecycle", augmenter=augmenter,
                 seed=cfg.seed)
    filled = load_imagenet_encoder(task.network, cfg.encoder)
    frozen = _freeze(task.network, cfg.encoder, cfg.frozen_stages)
    trainer = pl.Trainer(max_epochs=1, accelerator="auto", devices=1, precision="32-true", logger=False,
                         enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=10, default_root_dir=cache)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(task, loader)
    seconds = time.perf_counter() - started
    names = [c.name for c in CLASSES] + ["not_building(set)"]
    share = expected_class_share(hists, weights)
    drawn = (sampler.drawn[:, None] * hists).sum(axis=0)
    metadata = {
        "training_scenes": [s.name for s in scenes],
        "held_out_scenes": list(holdout),
        "vehicle_prior": {"share": cfg.vehicle_prior, "weight": cfg.vehicle_prior_weight},
        "partial_labels": "vehicles known only inside labelled_areas; outside them non-building pixels are the "
                          "candidate set {background, vehicle}; uncertain regions "
                          "ignored",
        "part_widths_m": {k: getattr(cfg, k) for k in ("building_border", "building_contact", "vehicle_border",
                                                       "vehicle_contact")},
        "sampler": cfg.sampler.kind,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "train_tile_size": cfg.tile_size,
        "geoseg_version": __version__,
    }
    card = card.replace(metadata=metadata)
    network = task.network.eval()
    save_model(Model(network, card), out, overwrite=overwrite)
    report = {
        "model": str(out),
        "config": _plain(cfg),
        "holdout": list(holdout),
        "labels": [s.stats.__dict__ for s in all_scenes],
        "tiles": len(windows),
        "encoder_filled": filled._asdict(),
        "frozen_parameters": frozen,
        "code_names": names,
        "share_tiles": dict(zip(names, (hists.sum(axis=0) / max(hists.sum(), 1)).round(5).tolist(), strict=True)),
        "share_expected": dict(zip(names, share.round(5).tolist(), strict=True)),
        "share_drawn": dict(zip(names, (drawn / max(drawn.sum(), 1)).round(5).tolist(), strict=True)),
        "distinct_tiles_drawn": int((sampler.drawn > 0).sum()),
        "loss_last": task.history[-1]["train_loss"] if task.history else None,
        "seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }
    report_path = out.with_name(out.stem + ".report.json")
    with atomic_path(report_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    log.info("trained %d steps in %.0f s -> %s", cfg.steps, seconds, out)
    return PartialTrainResult(out, report_path, seconds)


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
