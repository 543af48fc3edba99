"""``geoseg vectorize``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import overwrite_option, scheduler_option, show_progress, user_errors, workers_option


@click.command("vectorize")
@click.argument("raster", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output vector file: .gpkg (one layer per class), .geojson, .fgb or .parquet.")
@click.option("--confidence", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Confidence raster (0-255) on the same grid, for conf_mean and conf_max.")
@click.option("--classes", default=None, metavar="NAMES",
              help="Comma-separated class names or ids [default: every class but background].")
@click.option("--min-area", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Drop objects smaller than this many square metres.")
@click.option("--simplify", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Simplification tolerance in metres (0: none).")
@click.option("--fill-holes", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Fill holes smaller than this many square metres.")
@click.option("--regularize", is_flag=True, help="Square building outlines (right angles along their orientation).")
@click.option("--block-size", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Block size in pixels (memory per task grows with its square).")
@scheduler_option
@workers_option
@overwrite_option
@click.pass_context
def command(ctx: click.Context, raster: Path, out: Path, confidence: Path | None, classes: str | None, min_area: float,
            simplify: float, fill_holes: float, regularize: bool, block_size: int, scheduler: str | None,
            workers: int | None, overwrite: bool) -> None:
    """Vectorise the classes of RASTER (a geoseg class raster) into polygons."""
    with user_errors():
        from ..vectorization.api import vectorize

        result = vectorize(
            raster, out, confidence=confidence, classes=classes, min_area=min_area, simplify=simplify,
            fill_holes=fill_holes, regularize=regularize, block_size=block_size, scheduler=scheduler,
            workers=workers, overwrite=overwrite, progress=show_progress(ctx),
        )
        if show_progress(ctx):
            counts = ", ".join(f"{name}: {n}" for name, n in result.features.items())
            total = sum(result.features.values())
            click.echo(f"{result.output}: {total} features ({counts}) in {result.seconds:.1f} s")
