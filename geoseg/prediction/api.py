"""``geoseg.predict``: a scene through a model, tile by tile on Dask, into a land-cover COG.

The client process plans the tile grid, keeps a bounded number of batches in
flight on the workers (which read, normalise and run the network), stitches
the returned tiles band by band and writes finished rows straight to disk.
Reading, inference and writing overlap: while the workers compute, the client
stitches and writes what has come back.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import check_writable, temporary_sibling
from ..classes import CLASSES_TAG, NODATA, classes_to_json
from ..cluster import ClusterSpec, dask_client
from ..errors import InputError
from ..io.rasters import Grid, SceneInfo, inspect_scene
from ..model.card import ModelCard
from ..tiling import Tile, tile_grid
from .blend import BLEND_MODES
from .stitch import BandStitcher, FinishedBand, quantisation_scale
from .write import GDAL_CACHE_BYTES, CogWriter, StagingRaster, class_colormap, resample_into

__all__ = ["predict", "PredictResult", "check_scene_fits_card", "ResolutionWarning"]

log = logging.getLogger(__name__)


class ResolutionWarning(UserWarning):
    """The scene's ground resolution is far from what the model was trained for."""


@dataclass(frozen=True)
class PredictResult:
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
            f"convert it first (gdal_translate -ot {card.dtype.capitalize()} -scale ...) or use a model trained on {info.dtype}"
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
    factor = card.resolution / info.resolution_m
    if abs(factor - 1) <= 0.1:
        log.info("scene resolution %.3g m matches the model's %.3g m; not resampling", info.resolution_m, card.resolution)
        return None
    log.info("resampling %.3g m -> %.3g m (factor %.3g) for the model", info.resolution_m, card.resolution, factor)
    return Grid.rescaled(info, factor)


def _is_model_object(model: Any) -> bool:
    # A geoseg.Model can only exist if torch is already imported; never import it here.
    return type(model).__name__ == "Model" and hasattr(model, "network") and hasattr(model, "card")


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[list[Tile]]:
    for i in range(0, len(tiles), size):
        yield list(tiles[i : i + size])


def predict(
    scene: str | os.PathLike[str],
    model: Any = None,
    out: str | os.PathLike[str] = "landcover.tif",
    *,
    confidence: str | os.PathLike[str] | None = None,
    tile_size: int | None = None,
    overlap: int = 64,
    blend: str = "hann",
    batch_size: int = 8,
    device: str = "auto",
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
    resample: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> PredictResult:
    """Segment ``scene`` with ``model`` and write class ids (and optionally confidence) as COGs.

    ``model`` is a :class:`geoseg.Model`, a model file path, a shipped model's
    short name, or ``None`` for the default shipped model.  Runs on ``client``
    if given, else on the Dask cluster at ``scheduler``, else on a local
    cluster of ``workers`` processes bound to 127.0.0.1.  With ``resample``,
    the scene is read at the model's ground resolution and the result is
    resampled back onto the scene's grid.
    """
    from ..model.file import read_card, resolve_model_path

    started = time.perf_counter()
    if blend not in BLEND_MODES:
        raise InputError(f"blend {blend!r} is not one of {', '.join(BLEND_MODES)}")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    out = check_writable(out, overwrite=overwrite)
    if confidence is not None:
        confidence = check_writable(confidence, overwrite=overwrite)
        if Path(confidence).resolve() == out.resolve():
            raise InputError("--confidence must name a different file than --out")

    if _is_model_object(model):
        card, source = model.card, model
    else:
        path = resolve_model_path(model)
        card, source = read_card(path), str(path.resolve())
        if not card.rebuildable:
            raise InputError(
                f"model file {str(path)!r} holds a {card.architecture!r} network that geoseg cannot rebuild; "
                "load it with geoseg.load_model(path, network=your_module) and pass that Model"
            )
    info = inspect_scene(scene)
    check_scene_fits_card(info, card)
    if not resample:
        _check_resolution(info, card)

    grid = _model_grid(info, card) if resample else None
    work = info if grid is None else replace(info, width=grid.width, height=grid.height, transform=grid.transform)
    size = tile_size or card.tile_size
    if size < 8:
        raise InputError(f"tile size must be >= 8, got {size}")
    if not 0 <= overlap < size:
        raise InputError(f"overlap must be in [0, tile size {size}), got {overlap}")
    tiles = tile_grid(work.height, work.width, size, overlap)
    scale = quantisation_scale(tiles)
    log.info("%s: %dx%d px, %d tiles of %d px (overlap %d, blend %s)", info.path, work.width, work.height, len(tiles), size, overlap, blend)

    import rasterio

    tags = {CLASSES_TAG: classes_to_json(card.classes), "GEOSEG_MODEL": card.architecture}
    ids_meta = dict(nodata=NODATA, colormap=class_colormap(card.classes), tags=tags, description="class id")
    conf_meta = dict(nodata=0, tags={"GEOSEG_CONFIDENCE": "max probability x 255"}, description="confidence")
    scene_grid = dict(width=info.width, height=info.height, crs=info.crs, transform=info.affine)
    rasters: list[StagingRaster] = []
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        try:
            finals = [CogWriter(out, overwrite=overwrite, **scene_grid, **ids_meta)]
            if confidence is not None:
                finals.append(CogWriter(confidence, overwrite=overwrite, **scene_grid, **conf_meta))
            rasters.extend(finals)
            targets = finals
            if grid is not None:  # stitch on the model's grid, then resample back to the scene's
                model_grid = dict(width=grid.width, height=grid.height, crs=info.crs, transform=work.affine)
                targets = [
                    StagingRaster(temporary_sibling(f.final.with_suffix(".model-grid.tif")), **model_grid, **meta)
                    for f, meta in zip(finals, (ids_meta, conf_meta))
                ]
                rasters.extend(targets)

            def sink(band: FinishedBand) -> None:
                targets[0].write(band.window, band.class_ids)
                if len(targets) > 1:
                    targets[1].write(band.window, band.confidence)

            stitcher = BandStitcher(tiles, height=work.height, width=work.width, class_ids=card.class_ids, sink=sink)
            job = dict(info=work, grid=grid, tiles=tiles, blend=blend, scale=scale, batch_size=batch_size, device=device, progress=progress)
            if client is not None:
                _run(client, source, stitcher, **job)
            else:
                with dask_client(ClusterSpec(scheduler=scheduler, workers=workers)) as c:
                    _run(c, source, stitcher, **job)
            if not stitcher.complete:
                raise RuntimeError("internal error: not every band of the scene was finished")
            for staged, final in zip(targets, finals):
                if staged is not final:
                    resample_into(staged, final)
                    staged.remove()
            for final in finals:
                final.commit()
        except BaseException:
            for r in rasters:
                r.remove()
            raise
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", out, seconds)
    return PredictResult(out, Path(confidence) if confidence else None, len(tiles), info.width, info.height, seconds)


def _run(
    client: Any,
    source: Any,
    stitcher: BandStitcher,
    *,
    info: SceneInfo,
    grid: Grid | None,
    tiles: Sequence[Tile],
    blend: str,
    scale: int,
    batch_size: int,
    device: str,
    progress: bool,
) -> None:
    from distributed import as_completed
    from tqdm.auto import tqdm

    from .tasks import ModelPlugin, predict_tiles

    name = f"geoseg-model-{uuid.uuid4().hex[:8]}"
    # On a cluster running on this machine, share the cores between the worker threads;
    # on a remote cluster each worker decides from its own core count.
    torch_threads = None
    if getattr(client, "cluster", None) is not None:
        nthreads = sum(client.nthreads().values())
        torch_threads = max(1, (os.cpu_count() or 1) // max(1, nthreads))
    client.register_plugin(ModelPlugin(source, device=device, torch_threads=torch_threads), name=name)
    in_flight_max = max(2, 2 * sum(client.nthreads().values()))
    pending = _batches(tiles, batch_size)
    kwargs = dict(scene_height=info.height, scene_width=info.width, blend=blend, scale=scale, grid=grid)

    def submit(batch: list[Tile]) -> Any:
        return client.submit(predict_tiles, name, info.path, info.data_bands, batch, pure=False, **kwargs)

    futures = as_completed([submit(b) for b in itertools.islice(pending, in_flight_max)], loop=client.loop)
    bar = tqdm(total=len(tiles), unit="tile", desc=Path(info.path).name, disable=not progress, leave=False)
    try:
        for future in futures:
            results = future.result()
            future.release()
            for tile, quantised in results:
                stitcher.add(tile, quantised)
            bar.update(len(results))
            nxt = next(pending, None)
            if nxt is not None:
                futures.add(submit(nxt))
    except BaseException:
        for f in futures.futures:
            f.cancel()
        raise
    finally:
        bar.close()
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # a worker may already be gone; nothing to free there
            log.debug("could not unregister %s", name)
