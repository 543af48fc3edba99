"""The ``geoseg`` command line: one group, one module per subcommand.

Heavy imports (torch, dask, rasterio) happen inside the commands, so
``geoseg --help`` is instant.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from .options import configure_logging

_COMMANDS = {
    "predict": "geoseg.cli.predict",
    "vectorize": "geoseg.cli.vectorize",
    "train": "geoseg.cli.train",
    "evaluate": "geoseg.cli.evaluate",
    "batch": "geoseg.cli.batch",
    "demo": "geoseg.cli.demo",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs or shows help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _COMMANDS.get(name)
        if module is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoseg")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Land-cover maps and GIS-ready polygons from satellite and aerial GeoTIFFs."""
    ctx.obj = {"quiet": quiet}
    configure_logging(verbose, quiet)
