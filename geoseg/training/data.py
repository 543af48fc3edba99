"""Everything training needs to know about its data, computed once before the first step.

:func:`prepare_training_data` inspects the scenes, puts labels on the image
grids, builds (or reuses) the tile index on Dask, checks the label values,
computes per-band normalisation over the scenes' valid pixels, holds out the
validation blocks and picks the tiles training may draw from.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import ClassInfo, PartScheme
from ..cluster import ClusterSpec, dask_client
from ..errors import ConfigError, InputError, LabelError
from ..io.rasters import SceneInfo, inspect_scene, open_raster
from ..io.resample import resampled_copy
from ..model.card import ModelCard, Normalization
from ..model.network import create_network
from ..tiling import PixelWindow
from .config import SceneConfig, TrainConfig
from .dataset import label_lut
from .labels import PreparedLabels, prepare_labels
from .splits import split_tiles, validation_blocks, validation_windows
from .tile_index import SceneSource, TileIndex, build_tile_index, check_label_values

__all__ = ["TrainingData", "band_names", "class_histograms", "prepare_training_data"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    scenes: tuple[SceneInfo, ...]
    labels: tuple[PreparedLabels, ...]
    index: TileIndex
    lut: np.ndarray
    #: Class histogram (tiles x classes) of every index tile's read window.
    class_hists: np.ndarray
    #: Positions in ``index.tiles`` that training may draw.
    train_tiles: tuple[int, ...]
    dropped_straddling: int
    dropped_unlabelled: int
    blocks: tuple[tuple[PixelWindow, ...], ...]
    #: ``(scene, read window, scored window)`` covering the validation blocks.
    val_windows: tuple[tuple[int, PixelWindow, PixelWindow], ...]
    #: The model card without training metadata (normalisation included).
    card: ModelCard

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.card.classes]

    @property
    def train_hists(self) -> np.ndarray:
        return self.class_hists[list(self.train_tiles)]

    def scene_class_counts(self) -> np.ndarray:
        """Labelled pixels per class over the whole training scenes (exact)."""
        return class_histograms(list(self.index.label_totals), self.lut, self.card.num_classes).sum(axis=0)


def band_names(info: SceneInfo) -> tuple[str, ...]:
    """Band names from descriptions or colour interpretation (``red``...), else ``band1``..."""
    with open_raster(info.path) as ds:
        names = []
        for b in info.data_bands:
            interp = ds.colorinterp[b - 1].name
            generic = interp in ("undefined", "gray", "grey")
            names.append(ds.descriptions[b - 1] or (f"band{b}" if generic else interp))
    return tuple(names) if len(set(names)) == len(names) else tuple(f"band{b}" for b in info.data_bands)


def class_histograms(hists: list, lut: np.ndarray, n_classes: int) -> np.ndarray:
    """Label-id histograms (dicts) -> class-channel histograms ``(len(hists), n_classes)``."""
    out = np.zeros((len(hists), n_classes), dtype=np.int64)
    for i, hist in enumerate(hists):
        for label, count in hist.items():
            channel = lut[label] if 0 <= label < len(lut) else -1
            if channel >= 0:
                out[i, channel] += count
    return out


def _inspect(cfg: TrainConfig, run_dir: Path) -> tuple[SceneInfo, ...]:
    infos = []
    for i, scene in enumerate(cfg.scenes):
        if not scene.image.exists():
            raise InputError(
                f"scenes[{i}].image {str(scene.image)!r} does not exist; check the path "
                "(relative paths start at data_root, else at the config file's folder)"
            )
        info = inspect_scene(scene.image)
        res = info.resolution_m
        if cfg.resolution is not None and res is not None and abs(res / cfg.resolution - 1) > 0.02:
            cache = run_dir / "resampled"
            cache.mkdir(parents=True, exist_ok=True)
            info = inspect_scene(resampled_copy(info, cfg.resolution, cache))
        infos.append(info)
    first = infos[0]
    for info in infos[1:]:
        if len(info.data_bands) != len(first.data_bands) or info.dtype != first.dtype:
            raise InputError(
                f"training scenes differ: {first.path!r} has {len(first.data_bands)} {first.dtype} band(s), "
                f"{info.path!r} has {len(info.data_bands)} {info.dtype}; every scene needs the same bands and dtype"
            )
    return tuple(infos)


def _classes_and_parts(cfg: TrainConfig) -> tuple[tuple[ClassInfo, ...], tuple[PartScheme, ...]]:
    """The network's classes (with the border and contact classes when ``parts`` is set) and the part schemes."""
    if cfg.parts is None:
        return tuple(cfg.classes), ()
    from .targets import part_classes

    classes, scheme = part_classes(cfg.classes, cfg.parts)
    return classes, (PartScheme.parse(scheme),)


def _imagenet_normalization(cfg: TrainConfig, n_bands: int) -> Normalization | None:
    """With ``encoder_weights: imagenet``: the encoder's own input normalisation (fails fast without its package)."""
    if cfg.model.encoder_weights is None:
        return None
    from ..model.pretrained import imagenet_normalization, weights_path

    weights_path(cfg.model.encoder)  # a clear error naming the pip package when the 'pretrained' extra is missing
    if n_bands != 3:
        raise ConfigError(
            f"encoder_weights: imagenet needs 3-band RGB scenes (0-255), but the scenes have {n_bands} data bands; "
            "select the RGB bands or set model.encoder_weights: null"
        )
    return Normalization.parse(imagenet_normalization(cfg.model.encoder))


def _card(cfg: TrainConfig, infos: tuple[SceneInfo, ...], normalization: Normalization) -> ModelCard:
    bands = cfg.bands or band_names(infos[0])
    if len(bands) != len(infos[0].data_bands):
        raise ConfigError(
            f"bands lists {len(bands)} names {list(bands)} but the scenes have {len(infos[0].data_bands)} data bands"
        )
    resolutions = [i.resolution_m for i in infos if i.resolution_m is not None]
    res_range = cfg.resolution_range or ((min(resolutions), max(resolutions)) if resolutions else None)
    return ModelCard(
        classes=_classes_and_parts(cfg)[0],
        parts=_classes_and_parts(cfg)[1],
        bands=bands,
        normalization=normalization,
        architecture=cfg.model.architecture,
        encoder=cfg.model.encoder,
        arch_params=cfg.model.arch_params,
        dtype=infos[0].dtype,
        tile_size=cfg.tile_size,
        resolution=statistics.median(resolutions) if resolutions else None,
        resolution_range=res_range,
        nodata="mask",
        ignore_index=cfg.ignore_id,
    )


def _label_path(cfg: TrainConfig, labels: Path, run_dir: Path) -> Path:
    """Raster labels follow their image to the training resolution (nearest neighbour); vectors need nothing."""
    if cfg.resolution is None or labels.suffix.lower() not in (".tif", ".tiff"):
        return labels
    info = inspect_scene(labels)
    if info.resolution_m is None or abs(info.resolution_m / cfg.resolution - 1) <= 0.02:
        return labels
    return resampled_copy(info, cfg.resolution, run_dir / "resampled", categorical=True)


def _held_out_scenes(cfg: TrainConfig) -> set[int]:
    """Positions of the scenes ``validation.scenes`` names (by file name or stem); every name must match one."""
    names = cfg.validation.scenes
    if cfg.validation.mode != "scenes":
        return set()
    held: set[int] = set()
    for name in names:
        hits = [k for k, s in enumerate(cfg.scenes) if name in (s.image.name, s.image.stem)]
        if len(hits) != 1:
            raise ConfigError(
                f"validation.scenes: {name!r} matches {len(hits)} scenes; name one image file of "
                f"{[s.image.name for s in cfg.scenes]}"
            )
        held.update(hits)
    if len(held) == len(cfg.scenes):
        raise ConfigError("validation.scenes holds out every scene; keep at least one for training")
    return held


def _held_out_strip(scene: SceneConfig, info: SceneInfo, whole: bool, mode: str) -> tuple[PixelWindow, ...]:
    """Mode ``scenes``: the vertical strip ``scenes[].hold_out`` of a scene that is not held out whole."""
    if mode != "scenes" or whole or scene.hold_out is None:
        return ()
    c0, c1 = (round(f * info.width) for f in scene.hold_out)
    return (PixelWindow(0, c0, info.height, c1 - c0),) if c1 > c0 else ()


def _prepare_scene_labels(cfg: TrainConfig, info: SceneInfo, scene: SceneConfig, run_dir: Path,
                          class_ids: list[int], schemes: tuple[PartScheme, ...]) -> PreparedLabels:
    if cfg.parts is not None:
        from .targets import prepare_part_labels

        return prepare_part_labels(info, scene.labels, class_ids=class_ids, scheme=schemes[0].to_dict(),
                                   parts=cfg.parts, ignore_id=cfg.ignore_id, class_column=scene.class_column,
                                   layer=scene.layer, fill=scene.fill, cache_dir=run_dir)
    return prepare_labels(info, _label_path(cfg, scene.labels, run_dir), class_ids=class_ids, ignore_id=cfg.ignore_id,
                          class_column=scene.class_column, layer=scene.layer, fill=scene.fill, cache_dir=run_dir)


def prepare_training_data(cfg: TrainConfig, run_dir: Path, *, progress: bool = False) -> TrainingData:
    infos = _inspect(cfg, run_dir)
    n_bands = len(infos[0].data_bands)
    # Fail fast on a bad architecture/encoder before any heavy work.
    draft = _card(cfg, infos, Normalization((0.0,) * n_bands, (1.0,) * n_bands))
    create_network(draft)
    imagenet = _imagenet_normalization(cfg, n_bands)
    if imagenet is not None and infos[0].dtype != "uint8":
        raise ConfigError(f"encoder_weights: imagenet expects uint8 RGB (0-255) scenes, got {infos[0].dtype}")

    classes, schemes = _classes_and_parts(cfg)
    class_ids = [c.id for c in classes]
    labels = tuple(
        _prepare_scene_labels(cfg, info, s, run_dir, class_ids, schemes)
        for info, s in zip(infos, cfg.scenes, strict=True)
    )
    sources = [
        SceneSource(i.path, lab.path, i.data_bands, i.height, i.width) for i, lab in zip(infos, labels, strict=True)
    ]
    stride = cfg.sampler.stride or cfg.tile_size // 2
    with dask_client(ClusterSpec(scheduler=cfg.cluster.scheduler, workers=cfg.cluster.workers)) as client:
        index = build_tile_index(
            sources, tile_size=cfg.tile_size, stride=stride, client=client, cache_dir=run_dir, progress=progress
        )
    check_label_values(index, class_ids, cfg.ignore_id)
    lut = label_lut(class_ids, cfg.ignore_id)
    hists = class_histograms([t.hist for t in index.tiles], lut, len(class_ids))

    v = cfg.validation
    held = _held_out_scenes(cfg)
    blocks = tuple(
        tuple(validation_blocks(i.height, i.width, mode=v.mode, fraction=v.fraction, strips=v.strips,
                                block_size=v.block_size or 4 * cfg.tile_size, seed=cfg.seed, scene=k,
                                held_out=k in held))
        + _held_out_strip(cfg.scenes[k], i, k in held, v.mode)
        for k, i in enumerate(infos)
    )
    if v.mode == "scenes" and not any(blocks):
        raise ConfigError("validation mode 'scenes' holds out nothing: name scenes in validation.scenes "
                          "or give scenes a hold_out strip")
    keep, straddling = split_tiles([(t.scene, t.window) for t in index.tiles], blocks)
    area = cfg.tile_size * cfg.tile_size
    least = cfg.sampler.min_labelled_share * area
    labelled_enough = [i for i in keep if hists[i].sum() > 0 and hists[i].sum() >= least]
    if not labelled_enough:
        raise LabelError(
            f"no training tile is left: {len(index.tiles)} tiles in the index, {straddling} overlap validation blocks, "
            f"{len(keep) - len(labelled_enough)} hold too few labelled pixels "
            f"(< {cfg.sampler.min_labelled_share:.0%}); "
            "use a smaller tile_size, a smaller validation.fraction or lower sampler.min_labelled_share"
        )
    val = tuple(
        (k, read, scored) for k, bl in enumerate(blocks) for read, scored in validation_windows(bl, cfg.tile_size)
    )
    log.info("%d training tiles (%d dropped at validation borders, %d with too few labels), %d validation tiles",
             len(labelled_enough), straddling, len(keep) - len(labelled_enough), len(val))
    return TrainingData(
        scenes=infos, labels=labels, index=index, lut=lut, class_hists=hists, train_tiles=tuple(labelled_enough),
        dropped_straddling=straddling, dropped_unlabelled=len(keep) - len(labelled_enough), blocks=blocks,
        val_windows=val, card=draft.replace(normalization=(imagenet or index.moments.normalization()).to_dict()),
    )
