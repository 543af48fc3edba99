"""Options and error handling shared by the subcommands."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

import click

from ..errors import ConfigError, GeoSegError


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    # Dask sets its own loggers to INFO when imported; show its chatter only with -vv.
    dask_level = logging.DEBUG if verbose >= 2 else max(level, logging.WARNING)
    handler.addFilter(lambda r: r.levelno >= dask_level or not r.name.startswith(("distributed", "dask")))
    logging.basicConfig(level=level, handlers=[handler])
    if quiet:
        warnings.simplefilter("ignore")
    else:
        # geoseg's own warnings (UserWarning subclasses) matter to users; library deprecations do not.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.formatwarning = lambda msg, cat, *a, **k: f"Warning: {msg}\n"


def show_progress(ctx: click.Context) -> bool:
    return not (ctx.find_root().obj or {}).get("quiet", False)


@contextlib.contextmanager
def user_errors(
    *, usage: tuple[type[BaseException], ...] = (), interrupted: str = "Interrupted; no output was written."
) -> Iterator[None]:
    """Turn geoseg's own errors into a one-line message.

    Exit status 2 for configuration errors (and the ``usage`` types), 1 for
    every other geoseg error, 130 on Ctrl-C.
    """
    try:
        yield
    except (ConfigError, *usage) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except (GeoSegError, FileNotFoundError, FileExistsError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(130)


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
scheduler_option = click.option(
    "--scheduler", metavar="ADDRESS", default=None, help="Run on an existing Dask cluster (e.g. tcp://host:8786)."
)
workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Worker processes of the local Dask cluster."
)
