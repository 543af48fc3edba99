"""Lightning callbacks of a geoseg training run: export of the best epoch, and sampler state in checkpoints."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

from ..model.card import ModelCard
from .sampling import TileSampler

if TYPE_CHECKING:
    from .task import SegmentationTask

__all__ = ["ExportBest", "SamplerState", "StderrProgressBar"]

log = logging.getLogger(__name__)


class ExportBest(pl.Callback):
    """After each validation, write the network as a model file (atomically) if its mIoU is the best so far."""

    def __init__(self, path: Path, card: ModelCard) -> None:
        self.path = Path(path)
        self.card = card
        self.best_score: float | None = None
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from ..model.network import Model, save_model

        task = cast("SegmentationTask", pl_module)
        if trainer.sanity_checking or not getattr(task, "history", None):
            return
        entry = task.history[-1]
        score = entry["val_miou"]
        if score is None or (self.best_score is not None and score <= self.best_score):
            return
        self.best_score, self.best_epoch = float(score), int(entry["epoch"])
        if trainer.is_global_zero:
            card = self.card.replace(metadata={"metrics": {"epoch": self.best_epoch, "val_miou": self.best_score}})
            save_model(Model(task.network, card), self.path, overwrite=True)
            log.info("epoch %d: validation mIoU %.4f, the best so far; saved %s", self.best_epoch, score, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")


class SamplerState(pl.Callback):
    """Keeps the sampler's generator and draw counts in checkpoints, so a resumed run draws as an unbroken one."""

    def __init__(self, sampler: TileSampler) -> None:
        self.sampler = sampler

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"drawn": torch.from_numpy(self.sampler.drawn.copy())}
        if self.sampler.generator is not None:
            state["generator"] = self.sampler.generator.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        drawn = state_dict.get("drawn")
        if drawn is not None and len(drawn) == len(self.sampler.drawn):
            self.sampler.drawn = np.asarray(drawn, dtype=np.int64).copy()
        if "generator" in state_dict and self.sampler.generator is not None:
            self.sampler.generator.set_state(state_dict["generator"])


class StderrProgressBar(TQDMProgressBar):
    """Lightning's progress bars on stderr, like every other geoseg progress bar; stdout stays for results."""

    def init_sanity_tqdm(self) -> Any:
        with contextlib.redirect_stdout(sys.stderr):  # Lightning passes file=sys.stdout, looked up at the call
            return super().init_sanity_tqdm()

    def init_train_tqdm(self) -> Any:
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_train_tqdm()

    def init_validation_tqdm(self) -> Any:
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()

    def init_predict_tqdm(self) -> Any:
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_predict_tqdm()

    def init_test_tqdm(self) -> Any:
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_test_tqdm()
