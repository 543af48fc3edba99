"""Options and error handling shared by the subcommands."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from ..errors import ConfigError, GeoSegError
from ..schema import Setting, settings

F = TypeVar("F", bound=Callable[..., Any])

#: The name of the log handler the CLI installs, so that a second call replaces it.
_HANDLER = "geoseg.cli"


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr at the level -v/-q ask for (once more replaces the handler installed before)."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    # Dask sets its own loggers to INFO when imported; show its chatter only with -vv.
    dask_level = logging.DEBUG if verbose >= 2 else max(level, logging.WARNING)
    handler.addFilter(lambda r: r.levelno >= dask_level or not r.name.startswith(("distributed", "dask")))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)
    logging.basicConfig(level=level, handlers=[handler])  # a no-op where someone else installed handlers
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


def _verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """-v/-q given after a subcommand: add them to those given before it and log accordingly."""
    if not value:
        return
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, dict) else {}
    root.obj = state
    state["verbose"] = state.get("verbose", 0) + (value if param.name == "verbose" else 0)
    state["quiet"] = state.get("quiet", False) or param.name == "quiet"
    configure_logging(state["verbose"], state["quiet"])


def verbosity_options() -> list[click.Parameter]:
    """-v/--verbose and -q/--quiet: the group's, and those every subcommand accepts after its name."""
    return [
        click.Option(["-v", "--verbose"], count=True, help="More log output (-vv for debug)."),
        click.Option(["-q", "--quiet"], is_flag=True, help="Only errors; no progress bars."),
    ]


def accept_verbosity(command: click.Command) -> click.Command:
    """Let ``command`` (and, for a group, its subcommands) take -v/-q after its name; idempotent."""
    names = {p.name for p in command.params}
    for param in verbosity_options():
        if param.name not in names:
            param.expose_value = False
            param.callback = _verbosity
            command.params.append(param)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_verbosity(sub)
    return command


def step_options(cls: type) -> Callable[[F], F]:
    """Click options for every :func:`~geoseg.schema.setting` of options type ``cls``.

    Flags are the field names with dashes (``min_area`` -> ``--min-area``);
    bounds, choices, defaults and help come from the setting.  The command
    receives them as one ``options`` argument, an instance of ``cls``.
    """
    fields = settings(cls)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f, _, _ in fields}
            try:
                options = cls(**values)
            except ConfigError as exc:  # a check click's types cannot express (e.g. device names)
                raise click.UsageError(str(exc)) from None
            return func(*args, options=options, **kwargs)

        wrapped: Any = command
        for f, meta, hint in reversed(fields):
            wrapped = _click_option(f, meta, hint)(wrapped)
        return typing.cast(F, wrapped)

    return decorate


def _click_option(f: dataclasses.Field[Any], meta: Setting, hint: Any) -> Callable[[F], F]:
    flag = "--" + f.name.replace("_", "-")
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint
    if base is bool:
        if f.default:
            return click.option(f"{flag}/--no-{flag[2:]}", f.name, default=True, show_default=True, help=meta.help)
        return click.option(flag, f.name, is_flag=True, default=False, help=meta.help)
    kind: Any = base
    if meta.choices:
        kind = click.Choice(meta.choices)
    elif base is int and (meta.minimum is not None or meta.maximum is not None):
        kind = click.IntRange(
            None if meta.minimum is None else int(meta.minimum),
            None if meta.maximum is None else int(meta.maximum),
            min_open=meta.min_open,
        )
    elif base is float and (meta.minimum is not None or meta.maximum is not None):
        kind = click.FloatRange(meta.minimum, meta.maximum, min_open=meta.min_open)
    return click.option(flag, f.name, type=kind, default=f.default, show_default=f.default is not None, help=meta.help)


@contextlib.contextmanager
def user_errors(
    *, usage: tuple[type[BaseException], ...] = (), interrupted: str = "Interrupted; no output was written."
) -> Iterator[None]:
    """Turn geoseg's own errors into a one-line message.

    Exit status 2 for configuration errors (and the ``usage`` types), 1 for
    every other geoseg error, 130 on Ctrl-C.
    """
    usage_errors: tuple[type[BaseException], ...] = (ConfigError, *usage)
    try:
        yield
    except usage_errors as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except (GeoSegError, OSError) as exc:  # OSError: a file the system refused (permissions, a full disk)
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
