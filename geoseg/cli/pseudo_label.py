"""``geoseg pseudo-label``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..prediction.options import PredictOptions
from .options import overwrite_option, show_progress, step_options, user_errors

if TYPE_CHECKING:
    from ..prediction.pseudo_labels import PseudoLabelResult


@click.command("pseudo-label")
@click.argument("scenes", nargs=-1, type=click.Path(dir_okay=False, path_type=str))  # str: a URL stays whole
@click.option("--model", "model", default=None,
              help="Model file (.safetensors) or shipped model name [default: buildings].")
@click.option("--min-confidence", required=True, type=click.FloatRange(0, 1, min_open=True),
              help="Label a pixel only where the model's confidence (max probability) is at least this, in (0, 1].")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the label rasters (<scene stem>.tif) and pseudo_labels.yaml.")
@step_options(PredictOptions)
@overwrite_option
@click.pass_context
def command(ctx: click.Context, scenes: tuple[str, ...], model: str | None, min_confidence: float, out: Path,
            options: PredictOptions, overwrite: bool) -> None:
    """Write training labels for SCENES where MODEL is confident, and the ignore id elsewhere.

    One label raster per scene (OUT/<scene stem>.tif, on the scene's grid) and
    OUT/pseudo_labels.yaml, the lines to paste into a training config.
    """
    if not scenes:
        raise click.UsageError("give at least one scene to pseudo-label")
    progress = show_progress(ctx)

    def report(result: PseudoLabelResult) -> None:
        if progress:
            click.echo(f"{result.labels}: {100 * result.labelled_share:.1f} % of the valid pixels labelled", err=True)

    with user_errors():
        from ..prediction.pseudo_labels import pseudo_label

        run = pseudo_label(list(scenes), model, out, min_confidence=min_confidence, options=options,
                           overwrite=overwrite, progress=progress, on_scene=report)
        if progress:
            click.echo(f"{len(run.results)} label raster(s) in {out}; unsure pixels are {run.ignore_id}; "
                       f"training-config lines: {run.snippet}", err=True)
