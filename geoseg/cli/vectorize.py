"""``geoseg vectorize``."""

from __future__ import annotations

from pathlib import Path

import click

from ..vectorization.options import VectorizeOptions
from .options import overwrite_option, scheduler_option, show_progress, step_options, user_errors, workers_option


@click.command("vectorize")
@click.argument("raster", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output vector file: .gpkg (one layer per class), .geojson, .fgb or .parquet.")
@click.option("--confidence", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Confidence raster (0-255) on the same grid, for conf_mean and conf_max.")
@click.option("--classes", default=None, metavar="NAMES",
              help="Comma-separated class names or ids [default: every class but background].")
@click.option("--parts", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Part sidecar of RASTER, for splitting touching buildings [default: <RASTER stem>.parts.tif].")
@step_options(VectorizeOptions)
@scheduler_option
@workers_option
@overwrite_option
@click.pass_context
def command(ctx: click.Context, raster: Path, out: Path, confidence: Path | None, classes: str | None,
            parts: Path | None, options: VectorizeOptions, scheduler: str | None, workers: int | None,
            overwrite: bool) -> None:
    """Vectorise the classes of RASTER (a geoseg class raster) into polygons."""
    with user_errors():
        from ..vectorization.api import vectorize

        result = vectorize(
            raster, out, confidence=confidence, classes=classes, min_area=options.min_area,
            simplify=options.simplify, fill_holes=options.fill_holes, regularize=options.regularize,
            rectangles=options.rectangles, rfc7946=options.rfc7946,
            block_size=options.block_size, split=options.split, min_seed_area=options.min_seed_area,
            parts=parts, scheduler=scheduler, workers=workers, overwrite=overwrite,
            progress=show_progress(ctx),
        )
        if show_progress(ctx):
            counts = ", ".join(f"{name}: {n}" for name, n in result.features.items())
            total = sum(result.features.values())
            click.echo(f"{result.output}: {total} features ({counts}) in {result.seconds:.1f} s")
