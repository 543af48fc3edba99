"""``geoseg evaluate``."""

from __future__ import annotations

from pathlib import Path

import click

from ..evaluation.options import EvaluateOptions
from .options import overwrite_option, show_progress, step_options, user_errors


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
@step_options(EvaluateOptions)
@click.option(
    "--labelled-areas",
    is_flag=True,
    help="Truth labels vehicles only inside its labelled_areas layer (a GeoPackage with layers vehicles, "
    "labelled_areas, uncertain): score vehicles there only (pixel IoU, polygon F1 at IoU 0.5 and 0.3, counts per "
    "area) into OUT/vehicle_metrics.json. Needs --pred-vectors.",
)
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
    options: EvaluateOptions,
    labelled_areas: bool,
    out: Path,
    overwrite: bool,
) -> None:
    """Compare PREDICTION (a class raster from geoseg predict) with truth labels and write a report."""
    if labelled_areas:
        return _partial(prediction, truth, pred_vectors, out, overwrite)
    with user_errors():
        from ..evaluation.api import evaluate

        metrics = evaluate(
            prediction,
            truth,
            out,
            pred_vectors=pred_vectors,
            image=image,
            ignore_id=options.ignore_id,
            iou_threshold=options.iou_threshold,
            class_column=options.class_column,
            overwrite=overwrite,
            progress=show_progress(ctx),
        )
        miou = metrics["mean_iou"]
        evaluated = sum(1 for c in metrics["per_class"] if c["status"] == "evaluated")
        text = "n/a" if miou is None else f"{miou:.4f}"
        click.echo(f"mean IoU {text} over {evaluated} classes; report: {out / 'report.html'}")


def _partial(prediction: Path, truth: Path, pred_vectors: Path | None, out: Path, overwrite: bool) -> None:
    """``--labelled-areas``: vehicles scored inside the truth's labelled areas (geoseg.evaluation.partial)."""
    if pred_vectors is None:
        raise click.UsageError("--labelled-areas needs --pred-vectors (the vehicle polygons from geoseg vectorize)")
    with user_errors():
        from ..evaluation.partial import evaluate_partial

        out.mkdir(parents=True, exist_ok=True)
        m = evaluate_partial(prediction, truth, pred_vectors, out=out / "vehicle_metrics.json", overwrite=overwrite)
        f1 = {t: ("n/a" if v["f1"] is None else f"{v['f1']:.3f}") for t, v in m["polygons"].items()}
        iou = "n/a" if m["pixels"]["iou"] is None else f"{m['pixels']['iou']:.3f}"
        click.echo(f"vehicles in {m['labelled_areas']} labelled areas: pixel IoU {iou}, polygon F1 "
                   + ", ".join(f"{f} at IoU {t}" for t, f in f1.items())
                   + f"; found {m['counts']['found']} of {m['counts']['labelled']}; {out / 'vehicle_metrics.json'}")
