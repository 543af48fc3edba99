"""The ``geoseg`` command line: one group, one module per subcommand.

Heavy imports (torch, dask, rasterio) happen inside the commands, so
``geoseg --help`` is instant.
"""

from __future__ import annotations

import importlib

import click

from ..version import __version__
from .options import accept_verbosity, configure_logging, verbosity_options

_COMMANDS = {
    "predict": "geoseg.cli.predict",
    "pseudo-label": "geoseg.cli.pseudo_label",
    "vectorize": "geoseg.cli.vectorize",
    "train": "geoseg.cli.train",
    "evaluate": "geoseg.cli.evaluate",
    "batch": "geoseg.cli.batch",
    "demo": "geoseg.cli.demo",
    "model": "geoseg.cli.model",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs or shows help.

    Every subcommand also takes -v/-q after its name (``geoseg predict -q ...``).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _COMMANDS.get(name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return accept_verbosity(command)


@click.group(cls=LazyGroup, params=verbosity_options(), context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoseg")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Land-cover maps and GIS-ready polygons from satellite and aerial GeoTIFFs."""
    ctx.obj = {"quiet": quiet, "verbose": verbose}
    configure_logging(verbose, quiet)
