"""``geoseg predict``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import overwrite_option, scheduler_option, show_progress, user_errors, workers_option


@click.command("predict")
@click.argument("scene", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model", default=None, help="Model file (.safetensors) or shipped model name [default: buildings].")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output class-id COG.")
@click.option("--confidence", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write max probability (0-255) as a COG.")
@click.option("--tile-size", type=click.IntRange(min=8), default=None, help="Tile size in pixels [default: the model's].")
@click.option("--overlap", type=click.IntRange(min=0), default=64, show_default=True, help="Overlap between tiles in pixels.")
@click.option("--blend", type=click.Choice(["hann", "crop"]), default="hann", show_default=True, help="How overlapping tiles are combined.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Tiles per network call.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resample", is_flag=True, help="Read the scene at the model's ground resolution and resample the result back.")
@scheduler_option
@workers_option
@overwrite_option
@click.pass_context
def command(ctx: click.Context, scene: Path, model: str | None, out: Path, confidence: Path | None, tile_size: int | None,
            overlap: int, blend: str, batch_size: int, device: str, resample: bool, scheduler: str | None, workers: int | None, overwrite: bool) -> None:
    """Segment SCENE (a GeoTIFF) into a land-cover COG."""
    with user_errors():
        from ..prediction.api import predict

        result = predict(
            scene, model, out, confidence=confidence, tile_size=tile_size, overlap=overlap, blend=blend,
            batch_size=batch_size, device=device, resample=resample, scheduler=scheduler, workers=workers, overwrite=overwrite,
            progress=show_progress(ctx),
        )
        if show_progress(ctx):
            click.echo(
                f"{result.output}: {result.width}x{result.height} px, {result.tiles} tiles, "
                f"{result.seconds:.1f} s ({result.megapixels_per_second:.2f} MPix/s)", err=True,
            )
