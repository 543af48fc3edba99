"""``geoseg demo``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .options import overwrite_option, show_progress, user_errors


@click.command("demo")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("geoseg-demo"),
              show_default=True, help="Folder for every output.")
@click.option("--model", default=None, help="Model file or shipped name [default: buildings].")
@overwrite_option
@click.pass_context
def command(ctx: click.Context, out: Path, model: str | None, overwrite: bool) -> None:
    """Predict, vectorize and evaluate on a bundled real scene (Kampala, held out from training)."""
    progress = show_progress(ctx)
    with user_errors():
        from ..demo import run_demo

        started = time.perf_counter()
        result = run_demo(out, model=model, overwrite=overwrite, progress=progress,
                          step=(lambda text: click.echo(text, err=True)) if progress else None)
        building = next((c for c in result.metrics["per_class"] if c["name"] == "building"), None)
        poly = result.metrics.get("polygon_metrics") or {}
        poly_row = next((c for c in poly.get("classes", []) if c["name"] == "building"), None)
        click.echo(f"Done in {time.perf_counter() - started:.0f} s.")
        if building is not None and building["iou"] is not None:
            f1 = f", polygon F1 {poly_row['f1']:.3f}" if poly_row and poly_row["f1"] is not None else ""
            click.echo(f"Building IoU {building['iou']:.3f}{f1} against OpenStreetMap outlines.")
        click.echo(f"  land-cover COG:   {result.landcover}")
        click.echo(f"  confidence COG:   {result.confidence}")
        click.echo(f"  buildings:        {result.buildings}")
        if result.vehicles is not None:
            click.echo(f"  vehicles:         {result.vehicles}")
        click.echo(f"  report:           {result.report}")
        click.echo(f"  preview:          {result.preview}")
