"""``geoseg.predict``: a scene through a model, tile by tile, into a land-cover COG.

The tile grid is cut into blocks of tiles (:mod:`.plan`).  Each block is read,
normalised, predicted, weighted and accumulated on one device
(:class:`~.device.Predictor`), which hands back only finished uint8 pixels and
int32 sums over the seams it shares with neighbouring blocks.  Blocks run on
threads of this process, one model per device (:mod:`.local`), or on a Dask
cluster, one model per worker (:mod:`.on_dask`).  This process writes what
comes back and turns it into COGs.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import check_free_space, check_writable, output_errors, temporary_sibling
from ..classes import NODATA
from ..cluster import ClusterSpec, dask_client
from ..errors import InputError, UsageError
from ..io.rasters import Grid, SceneInfo, inspect_scene
from ..model.card import ModelCard
from ..safety.files import same_file
from ..safety.limits import check_raster_budget, check_resample_factor, check_tile_budget
from ..tiling import tile_count
from .job import Piece, PredictJob
from .options import PredictOptions
from .parts import display_lut, display_tags, sidecar_for, sidecar_meta
from .plan import StitchPlan, block_side, plan_blocks
from .stitch import quantisation_scale
from .style import class_style, confidence_style
from .techniques import check_ensemble, ensemble_weights
from .write import GDAL_CACHE_BYTES, CogWriter, StagingRaster, class_colormap, resample_into

if TYPE_CHECKING:
    from distributed import Client

    from ..model.network import Model

__all__ = ["PredictResult", "ResolutionWarning", "check_scene_fits_card", "predict"]

log = logging.getLogger(__name__)


class ResolutionWarning(UserWarning):
    """The scene's ground resolution is far from what the model was trained for."""


_DEFAULTS = PredictOptions()


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict` wrote, and how fast."""

    output: Path
    confidence: Path | None
    tiles: int
    width: int
    height: int
    seconds: float

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / max(self.seconds, 1e-9)


def check_scene_fits_card(info: SceneInfo, card: ModelCard) -> None:
    """A one-line error if the scene's bands or dtype are not what the model expects."""
    if len(info.data_bands) != len(card.bands):
        alpha = info.count - len(info.data_bands)
        extra = f" (plus {alpha} alpha band)" if alpha else ""
        raise InputError(
            f"{info.path!r} has {len(info.data_bands)} data band(s){extra} but the model expects "
            f"{len(card.bands)} ({', '.join(card.bands)}); select those bands first (gdal_translate -b ...)"
        )
    if info.dtype != card.dtype:
        raise InputError(
            f"{info.path!r} is {info.dtype} but the model expects {card.dtype}; "
            f"convert it first (gdal_translate -ot {card.dtype.capitalize()} -scale ...) "
            f"or use a model trained on {info.dtype}"
        )


def _check_resolution(info: SceneInfo, card: ModelCard) -> None:
    if info.resolution_m is None or card.resolution_range is None:
        return
    lo, hi = card.resolution_range
    if not lo / 2 <= info.resolution_m <= hi * 2:
        warnings.warn(
            f"{Path(info.path).name}: ground resolution {info.resolution_m:.3g} m is far outside the "
            f"model's range {lo:.3g}-{hi:.3g} m; results may be poor",
            ResolutionWarning,
            stacklevel=3,
        )


def _model_grid(info: SceneInfo, card: ModelCard) -> Grid | None:
    """The scene's extent at the model's ground resolution, or None if they already agree within 10 %."""
    if card.resolution is None:
        raise InputError("--resample needs the model card's ground resolution, and this model's card has none")
    if info.resolution_m is None:
        raise InputError(f"{info.path!r}: cannot tell its ground resolution in metres, so it cannot be resampled")
    check_resample_factor(info.path, scene_m=info.resolution_m, model_m=card.resolution)
    factor = card.resolution / info.resolution_m
    if abs(factor - 1) <= 0.1:
        log.info(
            "scene resolution %.3g m matches the model's %.3g m; not resampling", info.resolution_m, card.resolution
        )
        return None
    log.info("resampling %.3g m -> %.3g m (factor %.3g) for the model", info.resolution_m, card.resolution, factor)
    grid = Grid.rescaled(info, factor)
    check_raster_budget(f"{info.path} at {card.resolution:g} m", width=grid.width, height=grid.height,
                        count=len(info.data_bands), dtype=info.dtype)
    return grid


def _is_model_object(model: Any) -> bool:
    # A geoseg.Model can only exist if torch is already imported; never import it here.
    return type(model).__name__ == "Model" and hasattr(model, "network") and hasattr(model, "card")


def _resolve_models(model: Any, weights: Sequence[float] | None) -> tuple[list[ModelCard], tuple[Any, ...],
                                                                             tuple[float, ...]]:
    """Cards, sources (a Model, or a model file's absolute path) and weights (adding up to 1) of ``model``: one model
    or a list of them (an ensemble, checked to read and write alike: :func:`~.techniques.check_ensemble`)."""
    from ..model.file import read_card, resolve_model_path

    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise UsageError("no model given; pass one model, or a list of models to ensemble")
    shares = ensemble_weights(weights, len(models))
    cards: list[ModelCard] = []
    sources: list[Any] = []
    names: list[str] = []
    for m in models:
        if _is_model_object(m):
            cards.append(m.card)
            sources.append(m)
            names.append(f"model {len(names) + 1} ({m.card.architecture})")
            continue
        path = resolve_model_path(m)
        card = read_card(path)
        if not card.rebuildable:
            raise InputError(
                f"model file {str(path)!r} holds a {card.architecture!r} network that geoseg cannot rebuild; "
                "load it with geoseg.load_model(path, network=your_module) and pass that Model"
            )
        cards.append(card)
        sources.append(str(path.resolve()))
        names.append(str(path))
    if len(cards) > 1:
        check_ensemble(cards, names)
    return cards, tuple(sources), shares


def predict(
    scene: str | os.PathLike[str],
    model: Model | str | os.PathLike[str] | Sequence[Model | str | os.PathLike[str]] | None = None,
    out: str | os.PathLike[str] = "landcover.tif",
    *,
    confidence: str | os.PathLike[str] | None = None,
    parts: str | os.PathLike[str] | bool = True,
    model_weights: Sequence[float] | None = None,
    tile_size: int | None = _DEFAULTS.tile_size,
    overlap: int = _DEFAULTS.overlap,
    blend: str = _DEFAULTS.blend,
    batch_size: int = _DEFAULTS.batch_size,
    device: str = _DEFAULTS.device,
    resample: bool = _DEFAULTS.resample,
    read_threads: int | None = _DEFAULTS.read_threads,
    tta: str = _DEFAULTS.tta,
    refine: str = _DEFAULTS.refine,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> PredictResult:
    """Segment ``scene`` with ``model`` and write class ids (and optionally confidence) as COGs.

    ``model`` is a :class:`geoseg.Model`, a model file path, a shipped model's
    short name, or ``None`` for the default shipped model; a list of them is
    an ensemble, whose softmax probabilities are averaged with
    ``model_weights`` (default: equal).  ``tta="flips"`` or ``"d4"`` also
    averages over flipped or rotated views of every tile (see
    :mod:`geoseg.prediction.techniques`); ``refine="guided"`` makes class
    edges follow image edges (:mod:`geoseg.prediction.refine`).  Runs in threads of
    this process, one model per device, unless given a Dask ``client``, the
    ``scheduler`` address of a Dask cluster, or a number of local Dask
    ``workers`` (processes).  The options are those of :class:`PredictOptions`.

    A model with part classes (building body, border, contact) writes them to
    the sidecar ``parts`` (default: ``<out stem>.parts.tif``; False: none),
    for ``geoseg vectorize`` to split touching buildings; ``out`` shows the
    parts folded into their class (see :mod:`geoseg.prediction.parts`).
    """
    options = PredictOptions(
        tile_size=tile_size, overlap=overlap, blend=blend, batch_size=batch_size, device=device, resample=resample,
        read_threads=read_threads, tta=tta, refine=refine,
    )
    on_dask = client is not None or scheduler is not None or workers is not None
    return _predict(scene, model, out, options, confidence=confidence, parts=parts,
                    cluster=ClusterSpec(scheduler, workers),
                    client=client, on_dask=on_dask, overwrite=overwrite, progress=progress,
                    model_weights=model_weights)


def _predict(
    scene: str | os.PathLike[str],
    model: Any,
    out: str | os.PathLike[str],
    options: PredictOptions,
    *,
    confidence: str | os.PathLike[str] | None,
    cluster: ClusterSpec,
    parts: str | os.PathLike[str] | bool = True,
    client: Client | None,
    on_dask: bool,
    overwrite: bool,
    progress: bool,
    model_weights: Sequence[float] | None = None,
) -> PredictResult:
    started = time.perf_counter()
    out = check_writable(out, overwrite=overwrite, inputs=[scene])
    if confidence is not None:
        confidence = check_writable(confidence, overwrite=overwrite, inputs=[scene])
        if same_file(confidence, out):
            raise UsageError("--confidence must name a different file than --out")

    cards, sources, weights = _resolve_models(model, model_weights)
    card = cards[0]  # the ensemble's models agree on classes, bands and nodata; the first one's tile size is used
    info = inspect_scene(scene)
    check_scene_fits_card(info, card)
    if not options.resample:
        _check_resolution(info, card)

    grid = _model_grid(info, card) if options.resample else None
    work = info if grid is None else replace(info, width=grid.width, height=grid.height, transform=grid.transform)
    size = options.tile_size or card.tile_size
    if size < 8:
        raise UsageError(f"tile size must be >= 8, got {size}")
    if not 0 <= options.overlap < size:
        raise UsageError(f"overlap must be in [0, tile size {size}), got {options.overlap}; use a smaller --overlap")
    tiles = tile_count(work.height, work.width, size, options.overlap)
    check_tile_budget(info.path, tiles=tiles, tile_size=size, overlap=options.overlap)
    side = block_side(tile_size=size, overlap=options.overlap, classes=card.num_classes,
                      batch_size=options.batch_size, tiles=tiles)
    plan = plan_blocks(work.height, work.width, size, options.overlap, side)
    job = PredictJob(
        scene=info.path, bands=info.data_bands, grid=grid, height=work.height, width=work.width, tile_size=size,
        overlap=options.overlap, blend=options.blend, batch_size=options.batch_size,
        scale=quantisation_scale(work.height, work.width, size, options.overlap),
        use_mask=card.nodata == "mask", read_threads=options.read_threads, confidence=confidence is not None,
    )
    log.info("%s: %dx%d px, %d tiles of %d px in %d blocks (overlap %d, blend %s)", info.path, work.width,
             work.height, tiles, size, len(plan.blocks), options.overlap, options.blend)
    lanes = None if on_dask else _local_lanes(sources, weights, options)
    sidecar = sidecar_for(card, out, parts)
    if sidecar is not None:
        sidecar = check_writable(sidecar, overwrite=overwrite)
        if sidecar.resolve() in {out.resolve(), Path(confidence).resolve() if confidence else None}:
            raise InputError(f"the part sidecar {str(sidecar)!r} must be a different file than --out and --confidence")
    fold = display_lut(card)

    import rasterio

    tags = {**display_tags(card), "GEOSEG_MODEL": "+".join(c.architecture for c in cards)}
    if options.tta != "none":
        tags["GEOSEG_TTA"] = options.tta
    if options.refine != "none":
        tags["GEOSEG_REFINE"] = options.refine
    ids_meta: dict[str, Any] = dict(nodata=NODATA, colormap=class_colormap(card.display_classes), tags=tags,
                                    description="class id", style=class_style(card.classes))
    conf_meta: dict[str, Any] = dict(nodata=0, tags={"GEOSEG_CONFIDENCE": "max probability x 255"},
                                     description="confidence", style=confidence_style())
    scene_grid = dict(width=info.width, height=info.height, crs=info.crs, transform=info.affine)
    rasters: list[StagingRaster] = []
    # The uncompressed staging rasters (one byte a pixel each, and a third more for the overviews built into them
    # before the COG copy) must fit before any work starts.
    outputs = [p for p in (out, confidence, sidecar) if p is not None]
    staging = info.width * info.height * 4 // 3 + (grid.width * grid.height if grid is not None else 0)
    for output in outputs:
        check_free_space(output, staging * sum(same_file(Path(o).parent, Path(output).parent) for o in outputs))
    # A full disk or a read-only folder met by GDAL while writing: one OutputError naming the output.
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), output_errors(out):
        try:
            finals = [CogWriter(out, overwrite=overwrite, **scene_grid, **ids_meta)]
            metas = [ids_meta]
            if confidence is not None:
                finals.append(CogWriter(confidence, overwrite=overwrite, **scene_grid, **conf_meta))
                metas.append(conf_meta)
            if sidecar is not None:  # the unfolded part classes, for splitting touching buildings
                finals.append(CogWriter(sidecar, overwrite=overwrite, **scene_grid, **sidecar_meta(card)))
                metas.append(sidecar_meta(card))
            rasters.extend(finals)
            targets: list[StagingRaster] = list(finals)
            if grid is not None:  # stitch on the model's grid, then resample back to the scene's
                model_grid = dict(width=grid.width, height=grid.height, crs=info.crs, transform=work.affine)
                targets = [
                    StagingRaster(temporary_sibling(f.final.with_suffix(".model-grid.tif")), **model_grid, **meta)
                    for f, meta in zip(finals, metas, strict=False)
                ]
                rasters.extend(targets)

            def sink(piece: Piece) -> None:
                targets[0].write(piece.window, piece.class_ids if fold is None else fold[piece.class_ids])
                if confidence is not None and piece.confidence is not None:
                    targets[1].write(piece.window, piece.confidence)
                if sidecar is not None:
                    targets[-1].write(piece.window, piece.class_ids)

            _run(job, plan, sources, weights, options, lanes, sink, class_ids=card.class_ids, cluster=cluster,
                 client=client, progress=progress, label=Path(info.path).name)
            for staged, final in zip(targets, finals, strict=False):
                if staged is not final:
                    resample_into(staged, final)
                    staged.remove()
            _commit_all(finals)
        except BaseException:
            for r in rasters:
                r.remove()
                if isinstance(r, CogWriter):  # all outputs or none: an interrupted commit may have renamed some
                    r.uncommit()
            raise
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", out, seconds)
    return PredictResult(out, Path(confidence) if confidence else None, tiles, info.width, info.height, seconds)


def _commit_all(finals: Sequence[CogWriter]) -> None:
    """Commit the outputs side by side (GDAL compresses each in threads of its own).  Of several failures, a full
    disk is the one reported: once one commit has failed and cleaned up, the others may no longer see the disk full."""
    with ThreadPoolExecutor(len(finals)) as pool:
        futures = [pool.submit(_commit_in_own_env, f) for f in finals]
    errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:
        raise min(errors, key=lambda e: getattr(e, "errno", None) != errno.ENOSPC)


def _commit_in_own_env(writer: CogWriter) -> Path:
    """Commit one output in a thread of its own, inside a GDAL environment of that thread (rasterio's is per thread)."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return writer.commit()


#: At most this many CPU lanes: each holds a batch's activations, so memory grows with them.
CPU_LANES = 2


def _local_lanes(sources: Sequence[Any], weights: Sequence[float], options: PredictOptions) -> list[Any]:
    """One lane per GPU; on the CPU up to :data:`CPU_LANES` lanes that share the torch threads."""
    import torch

    from ..model.network import load_model
    from .device import Predictor, local_devices

    devices = local_devices(options.device)
    loaded = {s: load_model(s) for s in sources if not _is_model_object(s)}  # a file named twice is loaded once
    models = [s if _is_model_object(s) else loaded[s] for s in sources]
    lanes = []
    for d in devices:
        predictor = Predictor(models, d, weights=weights, tta=options.tta, refine=options.refine)
        lanes += [predictor] * (min(CPU_LANES, torch.get_num_threads()) if d.type == "cpu" else 1)
    return lanes


def _run(
    job: PredictJob,
    plan: StitchPlan,
    sources: Sequence[Any],
    weights: Sequence[float],
    options: PredictOptions,
    lanes: list[Any] | None,
    sink: Any,
    *,
    class_ids: Sequence[int],
    cluster: ClusterSpec,
    client: Client | None,
    progress: bool,
    label: str,
) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=plan.tiles, unit="tile", desc=label, disable=not progress, leave=False) as bar:
        if lanes is not None:
            from .local import run_local

            run_local(job, plan, lanes, sink, on_tiles=bar.update)
            return
        from .on_dask import run_on_dask

        with dask_client(cluster, client=client) as c:
            run_on_dask(c, job, plan, sources, weights=weights, tta=options.tta, refine=options.refine,
                        device=options.device,
                        class_ids=class_ids, sink=sink, on_tiles=bar.update)
