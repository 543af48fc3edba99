"""Running a network on batches of tiles, inside Dask workers.

The model is loaded once per worker by :class:`ModelPlugin`; the task
:func:`predict_tiles` receives a scene path and tile windows, opens the file
itself, reads and normalises the tiles, runs them through the network as one
batch and returns weighted, quantised probabilities ready to stitch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import InputError, ModelError
from ..io.rasters import Grid, open_on_grid, read_window
from ..model.preprocess import normalise
from ..tiling import Tile
from .stitch import quantise_tile

__all__ = ["select_device", "forward_probs", "ModelPlugin", "predict_tiles"]

log = logging.getLogger(__name__)


def select_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ModelError(f"device {device!r} is not one of auto, cpu, cuda")
    return torch.device(device)


def forward_probs(network: Any, batch: np.ndarray, device: Any) -> np.ndarray:
    """Softmax probabilities ``(N, classes, H, W)`` float32 for a normalised batch.

    Mixed precision on a GPU; float32 on the CPU.  Non-finite outputs are an error.
    """
    import torch

    x = torch.from_numpy(batch).to(device, non_blocking=True)
    with torch.inference_mode():
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                logits = network(x)
        else:
            logits = network(x)
        logits = logits.float()
        if not torch.isfinite(logits).all():
            raise ModelError("the network produced non-finite values (NaN/inf); check the model and its normalisation")
        probs = torch.softmax(logits, dim=1)
    return probs.cpu().numpy()


class ModelPlugin(WorkerPlugin):
    """A Dask worker plugin that holds one loaded model per worker process."""

    def __init__(self, source: Any, *, device: str = "auto", torch_threads: int | None = None) -> None:
        self.source = source  # a model file path, or a geoseg.Model (pickled to the worker)
        self.device_name = device
        self.torch_threads = torch_threads
        self.model = None
        self.device = None

    def setup(self, worker: Any) -> None:
        import torch

        from ..model.network import Model, load_model

        threads = self.torch_threads or max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
        torch.set_num_threads(threads)
        self.device = select_device(self.device_name)
        model = self.source if isinstance(self.source, Model) else load_model(self.source)
        model.network.to(self.device).eval()
        self.model = model
        log.info("worker %s: model loaded on %s with %d torch thread(s)", worker.address, self.device, threads)

    def teardown(self, worker: Any) -> None:
        self.model = None


def _worker_model(plugin_name: str) -> ModelPlugin:
    from distributed import get_worker

    plugin = get_worker().plugins.get(plugin_name)
    if plugin is None or plugin.model is None:
        raise ModelError(f"model plugin {plugin_name!r} is not set up on this worker")
    return plugin


def predict_tiles(
    plugin_name: str,
    scene_path: str,
    bands: Sequence[int],
    tiles: Sequence[Tile],
    *,
    scene_height: int,
    scene_width: int,
    blend: str,
    scale: int,
    grid: Grid | None = None,
    resampling: str = "average",
) -> list[tuple[Tile, np.ndarray]]:
    """Read, normalise and predict ``tiles`` of a scene in one batch; return quantised weighted probabilities.

    With ``grid``, the scene is read warped onto that grid (the model's ground resolution).
    """
    plugin = _worker_model(plugin_name)
    card = plugin.model.card
    use_mask = card.nodata == "mask"
    inputs, masks = [], []
    with open_on_grid(scene_path, grid, resampling=resampling) as ds:
        for tile in tiles:
            data, valid = read_window(scene_path, tile.read, tuple(bands), use_mask=use_mask, dataset=ds)
            if not use_mask:
                inside = np.zeros_like(valid)
                inside[: max(0, scene_height - tile.read.row_off), : max(0, scene_width - tile.read.col_off)] = True
                valid = inside
            inputs.append(normalise(data, valid, card.normalization))
            masks.append(valid)
    batch = np.stack(inputs)
    probs = forward_probs(plugin.model.network, batch, plugin.device)
    if probs.shape[1] != card.num_classes or probs.shape[2:] != batch.shape[2:]:
        raise InputError(
            f"the network returned shape {probs.shape[1:]} for input {batch.shape[1:]}; expected "
            f"{card.num_classes} classes at the input size (tile size must suit the architecture, e.g. a multiple of 32)"
        )
    return [
        (tile, quantise_tile(probs[i], masks[i], tile, scene_height, scene_width, blend, scale))
        for i, tile in enumerate(tiles)
    ]
