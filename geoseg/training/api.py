"""``geoseg.train``: from a config to a model file and a training report.

Steps: read the config; prepare the data (:mod:`geoseg.training_data`: labels
on the image grids, the tile index on Dask, normalisation, the validation
split); sample tiles (class-balanced or uniform); train with Lightning; export
the best epoch (by validation mIoU) as a safetensors model file whose card
holds everything ``geoseg predict`` needs; write the report beside the model,
named after it (``roofs.safetensors`` -> ``roofs.report.json``).

Run state lives in ``<model stem>.run/`` beside the model: Lightning's
``last.ckpt`` (for ``resume=True``), the best weights so far
(``best.safetensors``), the tile index and rasterised labels.  Checkpoints are
only loaded from that folder, which this run wrote, and with
``weights_only=True``.  A finished or interrupted run continues with
``resume=True``, also with more epochs (``--set trainer.epochs=N``): it then
replaces the model and report it wrote.  Lightning's progress bar writes to
stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_path, check_not_input, check_writable, output_errors, temporary_sibling
from ..errors import ConfigError, GeoSegError, ModelError, OutputExistsError
from ..version import __version__
from .config import TrainConfig, load_config

if TYPE_CHECKING:  # the data stage imports torch and torchgeo: only once the config has been read and checked
    from .data import TrainingData

__all__ = ["REPORT_NAME", "TrainResult", "report_path_for", "run_dir_for", "train"]

log = logging.getLogger(__name__)

#: File name of the copy of the report kept in the run folder.
REPORT_NAME = "report.json"
#: Config keys a resumed run may change: it trains on to the new number of epochs.
RESUMABLE_CHANGES = (("trainer", "epochs"),)
_RUN_FILES = ("last.ckpt", "best.safetensors", "run.json")


@dataclass(frozen=True)
class TrainResult:
    model: Path
    report: Path
    epochs: int
    best_epoch: int
    best_miou: float
    seconds: float


def run_dir_for(out: str | os.PathLike[str]) -> Path:
    """The folder beside the model holding checkpoints, the tile index and rasterised labels."""
    out = Path(out)
    return out.with_name(out.stem + ".run")


def report_path_for(out: str | os.PathLike[str]) -> Path:
    """The training report beside the model, named after it (two models in one folder keep two reports)."""
    out = Path(out)
    return out.with_name(out.stem + ".report.json")


def _without_resumable(record: Any) -> Any:
    record = json.loads(json.dumps(record))
    for section, key in RESUMABLE_CHANGES:
        if isinstance(record, dict) and isinstance(record.get(section), dict):
            record[section].pop(key, None)
    return record


def _prepare_run_dir(out: Path, cfg: TrainConfig, *, overwrite: bool, resume: bool) -> Path:
    if out.suffix != ".safetensors":
        raise ConfigError(f"the model file must end in .safetensors, got {out.name!r}")
    if not resume:  # a resumed run replaces the model and report it made before
        check_writable(out, overwrite=overwrite)
        check_writable(report_path_for(out), overwrite=overwrite)
    run_dir = run_dir_for(out)
    last = run_dir / "last.ckpt"
    record = json.loads(json.dumps(cfg.to_dict()))
    if resume:
        if not last.exists():
            raise ConfigError(
                f"nothing to resume: {str(last)!r} does not exist; run without --resume to start training"
            )
        saved = run_dir / "run.json"
        before = json.loads(saved.read_text()).get("config") if saved.exists() else None
        if before is None or _without_resumable(before) != _without_resumable(record):
            raise ConfigError(
                f"the config differs from the one the run in {str(run_dir)!r} started with; resume with the same "
                "config and overrides (only trainer.epochs may change, to train on), or start afresh with --overwrite"
            )
        if before != record:
            with atomic_path(saved, overwrite=True) as tmp:
                tmp.write_text(json.dumps({"config": record, "geoseg": __version__}, indent=1))
        return run_dir
    if last.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(run_dir)!r} holds an earlier training run; pass --resume to continue it or --overwrite to start "
            "afresh"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    with atomic_path(run_dir / "run.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"config": record, "geoseg": __version__}, indent=1))
    return run_dir


def _accelerator(cfg: TrainConfig) -> tuple[str, Any]:
    """Lightning's accelerator and precision names (the precision as Lightning's ``Trainer`` types it)."""
    import torch

    device = cfg.trainer.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device is cuda but no CUDA GPU is available; use auto or cpu")
    gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return ("gpu", cfg.trainer.precision or "16-mixed") if gpu else ("cpu", cfg.trainer.precision or "32-true")


def _build_loss(cfg: TrainConfig, data: TrainingData) -> tuple[Any, dict[str, list[float]]]:
    from .losses import CrossEntropyLoss, DiceLoss, FocalLoss, TverskyLoss, WeightedSum, inverse_frequency_weights

    counts = data.train_hists.sum(axis=0)
    terms, weights_used = [], {}
    for i, term in enumerate(cfg.loss):
        weight = None
        if term.class_weights == "inverse_frequency":
            weight = inverse_frequency_weights(counts.tolist(), term.class_weight_power)
        elif term.class_weights is not None and not isinstance(term.class_weights, str):
            weight = list(term.class_weights)
        if weight is not None:
            weights_used[f"{i}:{term.kind}"] = weight
        if term.kind == "ce":
            loss: Any = CrossEntropyLoss(weight)
        elif term.kind == "focal":
            loss = FocalLoss(term.gamma, weight)
        elif term.kind == "dice":
            loss = DiceLoss(term.smooth)
        else:
            loss = TverskyLoss(term.alpha, term.beta, term.smooth)
        terms.append((term.weight, loss))
    return WeightedSum(terms), weights_used


def require_training_packages() -> None:
    """Training needs Lightning and torchgeo (the ``train`` extra); say so plainly when they are missing."""
    import importlib.util

    missing = [name for name in ("lightning", "torchgeo") if importlib.util.find_spec(name) is None]
    if missing:
        raise GeoSegError(f"training needs {' and '.join(missing)}; install them with: pip install 'geoseg[train]'")


def _route_lightning_logs() -> None:
    """Lightning installs its own INFO console handler on import; send its records to the caller's logging
    (the root logger's handlers and level) like every other library's."""
    level = logging.getLogger().getEffectiveLevel()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = True


def _fit(
    cfg: TrainConfig, data: TrainingData, run_dir: Path, *, resume: bool, progress: bool
) -> tuple[list[dict[str, Any]], dict[str, Any], np.ndarray, bool]:
    """Train; return the history, the best epoch's entry, tile draw counts, and whether this is the main process."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from torch.utils.data import DataLoader

    _route_lightning_logs()

    from .augment import Augmenter
    from .callbacks import ExportBest, SamplerState
    from .dataset import SceneTiles
    from .sampling import TileSampler, WindowSampler
    from .task import SegmentationTask

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    accelerator, precision = _accelerator(cfg)
    labels = [p.path for p in data.labels]
    norm = data.card.normalization
    train_set = SceneTiles(data.scenes, labels, normalization=norm, lut=data.lut)
    val_set = SceneTiles(data.scenes, labels, normalization=norm, lut=data.lut,
                         scored={(k, read): scored for k, read, scored in data.val_windows})
    generator = torch.Generator().manual_seed(cfg.seed)
    tiles = [data.index.tiles[i] for i in data.train_tiles]
    sampler = TileSampler.from_histograms(
        train_set, [(t.scene, t.window) for t in tiles], data.train_hists, kind=cfg.sampler.kind,
        power=cfg.sampler.power, max_ratio=cfg.sampler.max_weight_ratio,
        length=cfg.sampler.samples_per_epoch or len(tiles), generator=generator,
    )
    val_sampler = WindowSampler(val_set, [(k, read) for k, read, _ in data.val_windows])
    loader_args: dict[str, Any] = {
        "batch_size": cfg.trainer.batch_size, "num_workers": cfg.trainer.num_workers,
        "persistent_workers": cfg.trainer.num_workers > 0, "pin_memory": accelerator == "gpu",
    }
    train_loader = DataLoader(train_set, sampler=sampler, **loader_args)
    val_loader = DataLoader(val_set, sampler=val_sampler, **loader_args)

    names = data.class_names
    rare_names = set(cfg.augment.rare_classes)
    rare = tuple(c for c, cls in enumerate(data.card.classes) if cls.name in rare_names or str(cls.id) in rare_names)
    unknown_rare = rare_names - {c.name for c in data.card.classes} - {str(c.id) for c in data.card.classes}
    if unknown_rare:
        raise ConfigError(
            f"augment.rare_classes names {sorted(unknown_rare)}, which are not classes ({', '.join(names)})"
        )
    a = cfg.augment
    augmenter = Augmenter(a.flips, a.rotate90, a.brightness, a.contrast, rare, a.rare_strength, a.scale, a.crop)
    loss, _ = _build_loss(cfg, data)
    task = SegmentationTask(data.card, loss, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
                            schedule=cfg.optimizer.schedule, augmenter=augmenter, seed=cfg.seed,
                            encoder_weights=cfg.model.encoder_weights)
    export = ExportBest(run_dir / "best.safetensors", data.card)
    callbacks = [
        ModelCheckpoint(dirpath=run_dir, filename="last", save_top_k=1, monitor=None, enable_version_counter=False),
        EarlyStopping(monitor="val_miou", mode="max", patience=cfg.trainer.patience),
        export,
        SamplerState(sampler),
    ]
    if progress:
        from .callbacks import StderrProgressBar

        callbacks.append(StderrProgressBar())
    trainer = pl.Trainer(
        max_epochs=cfg.trainer.epochs, accelerator=accelerator, devices=cfg.trainer.devices,
        strategy=cfg.trainer.strategy, num_nodes=cfg.trainer.num_nodes, precision=precision,
        deterministic=cfg.trainer.deterministic, callbacks=callbacks,
        logger=False, enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=run_dir, log_every_n_steps=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
        checkpoint = run_dir / "last.ckpt" if resume else None
        trainer.fit(task, train_loader, val_loader, ckpt_path=checkpoint, weights_only=True)
    if trainer.interrupted:  # Lightning swallows Ctrl-C after saving; the run can be resumed
        raise KeyboardInterrupt(f"training interrupted; continue it with --resume (checkpoint {run_dir / 'last.ckpt'})")
    if export.best_epoch is None or not (run_dir / "best.safetensors").exists():
        raise ModelError("training finished without a scored validation epoch; nothing to export")
    best = next(h for h in task.history if h["epoch"] == export.best_epoch)
    return task.history, best, sampler.drawn.copy(), trainer.is_global_zero


def _write_outputs(cfg: TrainConfig, data: TrainingData, out: Path, run_dir: Path, history: list[dict[str, Any]],
                   best: dict[str, Any], drawn: np.ndarray, *, overwrite: bool, seconds: float) -> Path:
    from ..model.network import Model, load_model, save_model
    from .sampling import expected_class_share, tile_weights

    names = data.class_names
    _, class_weights = _build_loss(cfg, data)

    def shares(counts: np.ndarray) -> dict[str, float]:
        total = float(np.sum(counts))
        return {n: (float(c) / total if total else 0.0) for n, c in zip(names, counts, strict=False)}

    weights = tile_weights(
        data.train_hists, kind=cfg.sampler.kind, power=cfg.sampler.power, max_ratio=cfg.sampler.max_weight_ratio
    )
    dropped_outside = sum(p.report.dropped_outside for p in data.labels)
    metrics = {"epoch": best["epoch"], "val_miou": best["val_miou"], "classes": best["classes"]}
    training_data = [{"image": s.path, "labels": str(c.labels), "resolution_m": s.resolution_m}
                     for s, c in zip(data.scenes, cfg.scenes, strict=False)]
    card = data.card.replace(metadata={
        "training_data": training_data, "config": cfg.to_dict(), "metrics": metrics, "geoseg_version": __version__,
    })
    best_model = load_model(run_dir / "best.safetensors")
    report = {
        "model": str(out),
        "geoseg_version": __version__,
        "config": cfg.to_dict(),
        "labels": [p.report.to_dict() for p in data.labels],
        "labels_dropped_outside_images": dropped_outside,
        "class_share": {
            "training_scenes": shares(data.scene_class_counts()),
            "training_tiles": shares(data.train_hists.sum(axis=0)),
            "sampled_expected": shares(expected_class_share(data.train_hists, weights)),
            "sampled": shares((drawn[:, None] * data.train_hists).sum(axis=0)),
        },
        "tiles": {
            "index": len(data.index.tiles), "training": len(data.train_tiles), "validation": len(data.val_windows),
            "dropped_at_validation_borders": data.dropped_straddling, "dropped_too_few_labels": data.dropped_unlabelled,
            "drawn": int(drawn.sum()), "distinct_drawn": int((drawn > 0).sum()),
        },
        "validation_blocks": [[b.__dict__ for b in blocks] for blocks in data.blocks],
        "normalization": data.card.normalization.to_dict(),
        "class_weights": class_weights,
        "epochs": history,
        "best": metrics,
        "seconds": seconds,
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else None,
    }
    text = json.dumps(report, indent=1)
    report_path = report_path_for(out)
    # The model and its report are both staged, then renamed together: a failure leaves neither half-made.
    staged = [temporary_sibling(out), temporary_sibling(report_path)]
    try:
        with output_errors(out):
            save_model(Model(best_model.network, card), staged[0], overwrite=True)
        with output_errors(report_path):
            staged[1].write_text(text)
        check_writable(out, overwrite=overwrite)
        check_writable(report_path, overwrite=overwrite)
        os.replace(staged[0], out)
        os.replace(staged[1], report_path)
    finally:
        for tmp in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
    with atomic_path(run_dir / REPORT_NAME, overwrite=True) as tmp:
        tmp.write_text(text)
    return report_path


def train(
    config: str | os.PathLike[str] | TrainConfig | dict[str, Any],
    out: str | os.PathLike[str],
    *,
    overrides: tuple[str, ...] | list[str] = (),
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Train a model as ``config`` says; write it to ``out`` (``.safetensors``) and ``<out stem>.report.json``.

    ``config`` is a YAML file, a mapping or a :class:`~geoseg.config.TrainConfig`;
    ``overrides`` are ``"a.b=value"`` strings.  ``resume=True`` continues the
    run whose ``last.ckpt`` lies in ``<out stem>.run/`` (same config, but
    ``trainer.epochs`` may grow) and replaces its model and report.
    """
    require_training_packages()
    started = time.perf_counter()
    cfg = load_config(config, overrides=overrides)
    out = Path(out)
    inputs = [config if isinstance(config, (str, os.PathLike)) else None]
    inputs += [p for s in cfg.scenes for p in (s.image, s.labels)]
    check_not_input(out, inputs)
    check_not_input(report_path_for(out), inputs)
    fresh = not run_dir_for(out).exists()
    run_dir = _prepare_run_dir(out, cfg, overwrite=overwrite, resume=resume)
    try:
        from .data import prepare_training_data

        data = prepare_training_data(cfg, run_dir, progress=progress)
        history, best, drawn, main_process = _fit(cfg, data, run_dir, resume=resume, progress=progress)
    except BaseException:
        if fresh and not (run_dir / "last.ckpt").exists():  # nothing to resume: leave no trace of the run
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    report = report_path_for(out)
    result = TrainResult(out, report, len(history), int(best["epoch"]), float(best["val_miou"]), seconds)
    if not main_process:  # other DDP ranks: the main process writes the outputs
        return result
    _write_outputs(cfg, data, out, run_dir, history, best, drawn, overwrite=overwrite or resume, seconds=seconds)
    log.info("trained %d epoch(s) in %.0f s; best epoch %d, validation mIoU %.3f -> %s",
             len(history), seconds, best["epoch"], best["val_miou"], out)
    return result
