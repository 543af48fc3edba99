"""The Lightning module that trains a segmentation network described by a model card.

Lightning does the loop, checkpointing, early stopping, mixed precision and
multi-GPU; this module only says what a step is: augment (training only), run
the network, apply the loss, and for validation accumulate a confusion matrix
from which per-class IoU, precision, recall and F1 are computed each epoch.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from ..errors import LabelError, ModelError
from ..metrics import class_scores, confusion_matrix, mean_iou
from ..model.card import ModelCard
from ..model.network import create_network
from .augment import Augmenter
from .losses import IGNORE_INDEX

__all__ = ["SegmentationTask"]


class SegmentationTask(pl.LightningModule):
    """Train ``create_network(card)`` with ``loss``, AdamW and a per-step learning-rate schedule."""

    def __init__(
        self,
        card: ModelCard,
        loss: nn.Module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        schedule: str = "onecycle",
        augmenter: Augmenter | None = None,
        seed: int = 0,
        encoder_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.card = card
        self.network = create_network(card)
        if encoder_weights == "imagenet":
            from ..model.pretrained import load_imagenet_encoder

            if card.encoder is None:
                raise ModelError("encoder_weights: imagenet needs an encoder name in the model card")
            load_imagenet_encoder(self.network, card.encoder)
        elif encoder_weights is not None:
            raise ModelError(f"encoder_weights must be 'imagenet' or None, got {encoder_weights!r}")
        self.loss = loss
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.augmenter = augmenter
        self.aug_generator = torch.Generator().manual_seed(seed + 1)
        self.class_names = [c.name for c in card.classes]
        #: One entry per finished epoch: losses, validation scores, learning rate, seconds.
        self.history: list[dict[str, Any]] = []
        self._train_loss = torch.zeros(2, dtype=torch.float64)
        self._val_loss = torch.zeros(2, dtype=torch.float64)
        self._confusion: Tensor | None = None
        self._epoch_started = time.perf_counter()

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        if self.augmenter is not None and self.trainer is not None and self.trainer.training:
            image, mask, valid = self.augmenter(
                batch["image"], batch["mask"], batch["valid"], generator=self.aug_generator
            )
            batch = {**batch, "image": image, "mask": mask, "valid": valid}
        return batch

    def on_train_epoch_start(self) -> None:
        self._train_loss = torch.zeros(2, dtype=torch.float64, device=self.device)
        self._epoch_started = time.perf_counter()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self(batch["image"])
        loss = self.loss(logits, batch["mask"])
        if not torch.isfinite(loss):
            raise ModelError(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, step {batch_idx}; "
                "lower optimizer.lr or check the normalisation and labels"
            )
        one = torch.ones((), dtype=torch.float64, device=self.device)
        self._train_loss += torch.stack([loss.detach().double(), one])
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=logits.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        n = self.card.num_classes
        self._confusion = torch.zeros((n, n), dtype=torch.int64, device=self.device)
        self._val_loss = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        logits = self(batch["image"])
        target = batch["mask"]
        loss = self.loss(logits, target)
        labelled = (target != IGNORE_INDEX).sum()
        if labelled:
            self._val_loss += torch.stack([loss.detach().double() * labelled, labelled.double()])
        pred = logits.argmax(dim=1)
        self._confusion += confusion_matrix(pred, target, self.card.num_classes, ignore_index=IGNORE_INDEX)

    def on_validation_epoch_end(self) -> None:
        strategy = self.trainer.strategy
        confusion = strategy.reduce(self._confusion, reduce_op="sum")
        val_loss = strategy.reduce(self._val_loss, reduce_op="sum")
        train_loss = strategy.reduce(self._train_loss, reduce_op="sum")
        if int(confusion.sum()) == 0:
            raise LabelError(
                "the validation blocks hold no labelled pixels, so the model cannot be scored; change "
                "validation.mode/fraction/strips (or add labels) so that held-out blocks contain labels"
            )
        scores = class_scores(confusion.cpu().numpy(), self.class_names)
        miou = mean_iou(scores)
        self.log("val_miou", miou, prog_bar=True, sync_dist=False)
        if self.trainer.sanity_checking:
            return
        optimizers = self.optimizers(use_pl_optimizer=False)
        optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
        self.history.append({
            "epoch": int(self.current_epoch),
            "train_loss": float(train_loss[0] / train_loss[1]) if train_loss[1] > 0 else None,
            "val_loss": float(val_loss[0] / val_loss[1]) if val_loss[1] > 0 else None,
            "val_miou": None if math.isnan(miou) else miou,
            "classes": scores,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - self._epoch_started,
        })

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule == "constant":
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        if self.schedule == "onecycle":
            scheduler: Any = _StretchableOneCycleLR(optimizer, max_lr=self.lr, total_steps=steps)
        elif self.schedule == "cosine":
            scheduler = _StretchableCosineLR(optimizer, T_max=steps)
        else:
            raise ValueError(f"unknown learning-rate schedule {self.schedule!r}")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["geoseg"] = {"history": self.history, "augment_rng": self.aug_generator.get_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("geoseg") or {}
        self.history = list(state.get("history", []))
        if "augment_rng" in state:
            self.aug_generator.set_state(state["augment_rng"])


class _KeepsLength:
    """A learning-rate schedule that keeps its own length when a checkpoint is loaded into it.

    A run resumed with more epochs builds its schedule for the new number of steps; the checkpoint's
    state (step count, learning rates) then continues on that longer schedule instead of overrunning
    the old one.  With the same number of epochs nothing changes.
    """

    _length_fields: tuple[str, ...] = ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        own = {name: getattr(self, name) for name in self._length_fields if hasattr(self, name)}
        super().load_state_dict(state_dict)  # type: ignore[misc]
        for name, value in own.items():
            setattr(self, name, value)


class _StretchableOneCycleLR(_KeepsLength, torch.optim.lr_scheduler.OneCycleLR):
    _length_fields = ("total_steps", "_schedule_phases")


class _StretchableCosineLR(_KeepsLength, torch.optim.lr_scheduler.CosineAnnealingLR):
    _length_fields = ("T_max",)
