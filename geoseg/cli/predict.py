"""``geoseg predict``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..prediction.options import PredictOptions
from .options import overwrite_option, scheduler_option, show_progress, step_options, user_errors, workers_option


def _options_are_usage_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """An option value :class:`PredictOptions` refuses (e.g. ``--device gpu``) is a usage error (exit 2)."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None

    return run


@click.command("predict")
@click.argument("scene", type=click.Path(dir_okay=False, path_type=str))  # str: an https:// URL stays whole
@click.option("--model", "model", multiple=True,
              help="Model file (.safetensors) or shipped model name [default: buildings]; repeat it to average "
                   "several models (an ensemble).")
@click.option("--model-weights", "model_weights", default=None, metavar="W1,W2,...",
              help="Weights of the ensemble's models, one per --model, e.g. 0.6,0.4 [default: equal].")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output class-id COG.")
@click.option("--confidence", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write max probability (0-255) as a COG.")
@scheduler_option
@workers_option
@overwrite_option
@click.pass_context
@_options_are_usage_errors
@step_options(PredictOptions)
def command(ctx: click.Context, scene: str, model: tuple[str, ...], model_weights: str | None, out: Path,
            confidence: Path | None, options: PredictOptions, scheduler: str | None, workers: int | None,
            overwrite: bool) -> None:
    """Segment SCENE (a GeoTIFF, or a COG's https:// URL, read by ranges) into a land-cover COG.

    Runs in threads of this process, one model per device, unless --scheduler
    or --workers ask for a Dask cluster.
    """
    with user_errors():
        from ..prediction.api import predict
        from ..prediction.techniques import parse_weights

        weights = None if model_weights is None else parse_weights(model_weights)
        models = None if not model else model[0] if len(model) == 1 else list(model)
        result = predict(
            scene, models, out, model_weights=weights, confidence=confidence, tile_size=options.tile_size,
            overlap=options.overlap, blend=options.blend, batch_size=options.batch_size, device=options.device,
            resample=options.resample,
            read_threads=options.read_threads, tta=options.tta, refine=options.refine, scheduler=scheduler,
            workers=workers, overwrite=overwrite, progress=show_progress(ctx),
        )
        if show_progress(ctx):
            click.echo(
                f"{result.output}: {result.width}x{result.height} px, {result.tiles} tiles, "
                f"{result.seconds:.1f} s ({result.megapixels_per_second:.2f} MPix/s)", err=True,
            )
