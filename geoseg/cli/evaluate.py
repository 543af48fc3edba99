"""``geoseg evaluate``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import overwrite_option, show_progress, user_errors


@click.command("evaluate")
@click.argument("prediction", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--truth",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Truth: a GeoTIFF of class ids or polygons (.gpkg, .geojson) with a class column; any CRS.",
)
@click.option(
    "--pred-vectors",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Predicted polygons (GeoPackage, one layer per class) for polygon precision/recall/F1.",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The scene, shown as a preview in the report.",
)
@click.option(
    "--ignore-id",
    type=click.IntRange(0, 254),
    default=None,
    help="Truth class id left out of every figure (e.g. 0 for unlabelled).",
)
@click.option(
    "--iou-threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.5,
    show_default=True,
    help="IoU a predicted polygon needs with a truth polygon to match it.",
)
@click.option("--class-column", default="class_id", show_default=True, help="Column of class ids in vector truth.")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (metrics.json, report.html, PNG previews).",
)
@overwrite_option
@click.pass_context
def command(
    ctx: click.Context,
    prediction: Path,
    truth: Path,
    pred_vectors: Path | None,
    image: Path | None,
    ignore_id: int | None,
    iou_threshold: float,
    class_column: str,
    out: Path,
    overwrite: bool,
) -> None:
    """Compare PREDICTION (a class raster from geoseg predict) with truth labels and write a report."""
    with user_errors():
        from ..evaluation.api import evaluate

        metrics = evaluate(
            prediction,
            truth,
            out,
            pred_vectors=pred_vectors,
            image=image,
            ignore_id=ignore_id,
            iou_threshold=iou_threshold,
            class_column=class_column,
            overwrite=overwrite,
            progress=show_progress(ctx),
        )
        miou = metrics["mean_iou"]
        evaluated = sum(1 for c in metrics["per_class"] if c["status"] == "evaluated")
        text = "n/a" if miou is None else f"{miou:.4f}"
        click.echo(f"mean IoU {text} over {evaluated} classes; report: {out / 'report.html'}")
