"""``geoseg model``: look at a model's card, and describe a model for STAC catalogues."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import overwrite_option, user_errors

MODEL_ARGUMENT = click.argument("model", metavar="MODEL")


@click.group("model")
def command() -> None:
    """Inspect model files (.safetensors, smp save_pretrained folders, shipped names)."""


@command.command("show")
@MODEL_ARGUMENT
def show(model: str) -> None:
    """Print MODEL's card as JSON: classes, bands, dtype, normalisation, tile size, resolution.

    Reads only the file's header, not its weights.
    """
    with user_errors():
        from ..model.file import read_card, resolve_model_path

        card = read_card(resolve_model_path(model))
        click.echo(json.dumps(card.to_dict(), indent=1, sort_keys=True))


@command.command("stac")
@MODEL_ARGUMENT
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="STAC Item to write (JSON), with hrefs relative to it.")
@overwrite_option
def stac(model: str, out: Path, overwrite: bool) -> None:
    """Write MODEL as a STAC Item with the Machine Learning Model extension (MLM).

    The item names the weights as its model asset (with checksum and size),
    the input bands, normalisation and tile size, and the output classes, so
    catalogues and other tools can find and run the model.
    """
    with user_errors():
        from ..atomic import atomic_path
        from ..model.file import resolve_model_path
        from ..model.stac_mlm import model_item

        path = resolve_model_path(model)
        item = model_item(path, item_href=out)
        with atomic_path(out, overwrite=overwrite, inputs=[path]) as tmp:
            tmp.write_text(json.dumps(item, indent=1) + "\n")
        click.echo(str(out))
