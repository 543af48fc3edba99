"""``geoseg train``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import overwrite_option, show_progress, user_errors


@click.command("train")
@click.option("--config", "-c", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Training config (YAML); see configs/train/ for examples.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set trainer.epochs=5 --set sampler.kind=uniform (repeatable).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (.safetensors); <name>.report.json is written beside it.")
@click.option("--resume", is_flag=True,
              help="Continue the run in <out stem>.run/ (interrupted, or finished: --set trainer.epochs=N trains on).")
@overwrite_option
@click.pass_context
def command(
    ctx: click.Context, config: Path, overrides: tuple[str, ...], out: Path, resume: bool, overwrite: bool
) -> None:
    """Train a segmentation model on GeoTIFF scenes and their labels.

    Paths in the config are relative to the config file's folder (or to its
    data_root key); ${VAR} and ${VAR:-default} are taken from the environment.
    """
    with user_errors():
        from ..training.api import require_training_packages, train

        require_training_packages()
        result = train(
            config, out, overrides=overrides, overwrite=overwrite, resume=resume, progress=show_progress(ctx)
        )
        if show_progress(ctx):
            click.echo(
                f"{result.model}: {result.epochs} epoch(s), best epoch {result.best_epoch} with validation mIoU "
                f"{result.best_miou:.3f}, {result.seconds:.0f} s; report: {result.report}", err=True,
            )

