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

from ..cluster import ClusterSpec, dask_client
from ..errors import ConfigError, InputError, LabelError
from ..io.rasters import SceneInfo, inspect_scene, open_raster
from ..io.resample import resampled_copy
from ..model.card import ModelCard, Normalization
from ..model.network import create_network
from ..tiling import PixelWindow
from .config import TrainConfig
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
            names.append(ds.descriptions[b - 1] or (interp if interp not in ("undefined", "gray", "grey") else f"band{b}"))
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
        if cfg.resolution is not None and info.resolution_m is not None and abs(info.resolution_m / cfg.resolution - 1) > 0.02:
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


def _card(cfg: TrainConfig, infos: tuple[SceneInfo, ...], normalization: Normalization) -> ModelCard:
    bands = cfg.bands or band_names(infos[0])
    if len(bands) != len(infos[0].data_bands):
        raise ConfigError(f"bands lists {len(bands)} names {list(bands)} but the scenes have {len(infos[0].data_bands)} data bands")
    resolutions = [i.resolution_m for i in infos if i.resolution_m is not None]
    res_range = cfg.resolution_range or ((min(resolutions), max(resolutions)) if resolutions else None)
    return ModelCard(
        classes=cfg.classes,
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


def prepare_training_data(cfg: TrainConfig, run_dir: Path, *, progress: bool = False) -> TrainingData:
    infos = _inspect(cfg, run_dir)
    n_bands = len(infos[0].data_bands)
    # Fail fast on a bad architecture/encoder before any heavy work.
    draft = _card(cfg, infos, Normalization((0.0,) * n_bands, (1.0,) * n_bands))
    create_network(draft)

    class_ids = [c.id for c in cfg.classes]
    labels = tuple(
        prepare_labels(info, _label_path(cfg, s.labels, run_dir), class_ids=class_ids, ignore_id=cfg.ignore_id, class_column=s.class_column,
                       layer=s.layer, fill=s.fill, cache_dir=run_dir)
        for info, s in zip(infos, cfg.scenes)
    )
    sources = [SceneSource(i.path, lab.path, i.data_bands, i.height, i.width) for i, lab in zip(infos, labels)]
    stride = cfg.sampler.stride or cfg.tile_size // 2
    with dask_client(ClusterSpec(scheduler=cfg.cluster.scheduler, workers=cfg.cluster.workers)) as client:
        index = build_tile_index(sources, tile_size=cfg.tile_size, stride=stride, client=client, cache_dir=run_dir, progress=progress)
    check_label_values(index, class_ids, cfg.ignore_id)
    lut = label_lut(class_ids, cfg.ignore_id)
    hists = class_histograms([t.hist for t in index.tiles], lut, len(class_ids))

    v = cfg.validation
    blocks = tuple(
        tuple(validation_blocks(i.height, i.width, mode=v.mode, fraction=v.fraction, strips=v.strips,
                                block_size=v.block_size or 4 * cfg.tile_size, seed=cfg.seed, scene=k))
        for k, i in enumerate(infos)
    )
    keep, straddling = split_tiles([(t.scene, t.window) for t in index.tiles], blocks)
    area = cfg.tile_size * cfg.tile_size
    labelled_enough = [i for i in keep if hists[i].sum() > 0 and hists[i].sum() >= cfg.sampler.min_labelled_share * area]
    if not labelled_enough:
        raise LabelError(
            f"no training tile is left: {len(index.tiles)} tiles in the index, {straddling} overlap validation blocks, "
            f"{len(keep) - len(labelled_enough)} hold too few labelled pixels (< {cfg.sampler.min_labelled_share:.0%}); "
            "use a smaller tile_size, a smaller validation.fraction or lower sampler.min_labelled_share"
        )
    val = tuple((k, read, scored) for k, bl in enumerate(blocks) for read, scored in validation_windows(bl, cfg.tile_size))
    log.info("%d training tiles (%d dropped at validation borders, %d with too few labels), %d validation tiles",
             len(labelled_enough), straddling, len(keep) - len(labelled_enough), len(val))
    return TrainingData(
        scenes=infos, labels=labels, index=index, lut=lut, class_hists=hists, train_tiles=tuple(labelled_enough),
        dropped_straddling=straddling, dropped_unlabelled=len(keep) - len(labelled_enough), blocks=blocks,
        val_windows=val, card=draft.replace(normalization=index.moments.normalization().to_dict()),
    )
