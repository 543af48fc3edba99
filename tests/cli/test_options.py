"""Shared CLI options: -v/-q before or after the subcommand, and click options built from a step's options type."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from geoseg.cli import _COMMANDS, main
from geoseg.cli import options as cli_options
from geoseg.cli.options import show_progress, step_options
from geoseg.errors import ConfigError
from geoseg.evaluation.options import EvaluateOptions
from geoseg.schema import setting, settings
from geoseg.vectorization.options import VectorizeOptions


@pytest.fixture
def probe(monkeypatch):
    """A ``geoseg probe`` subcommand that prints what the group and its own -v/-q made of the verbosity."""
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(cli_options, "configure_logging", lambda verbose, quiet: calls.append((verbose, quiet)))

    @click.command("probe")
    @click.pass_context
    def command(ctx: click.Context) -> None:
        state = ctx.find_root().obj
        click.echo(json.dumps({"progress": show_progress(ctx), "verbose": state["verbose"], "quiet": state["quiet"]}))

    module = types.ModuleType("geoseg_cli_probe")
    module.command = command  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(_COMMANDS, "probe", module.__name__)
    monkeypatch.setattr("geoseg.cli.configure_logging", lambda verbose, quiet: calls.append((verbose, quiet)))
    return calls


@pytest.mark.parametrize("args, progress, verbose", [
    (["probe"], True, 0),
    (["-q", "probe"], False, 0),
    (["probe", "-q"], False, 0),
    (["probe", "--quiet"], False, 0),
    (["-v", "probe"], True, 1),
    (["probe", "-vv"], True, 2),
    (["-v", "probe", "-v"], True, 2),
])
def test_verbosity_is_accepted_before_and_after_the_subcommand(probe, args, progress, verbose):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"progress": progress, "verbose": verbose, "quiet": not progress}
    assert probe[-1] == (verbose, not progress)  # logging follows the flags given after the subcommand too


@pytest.mark.parametrize("command", [["predict"], ["pseudo-label"], ["vectorize"], ["evaluate"], ["train"], ["demo"],
                                     ["batch"], ["batch", "run"], ["batch", "status"]])
def test_every_subcommand_lists_verbosity(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "-q, --quiet" in result.output and "-v, --verbose" in result.output


def test_a_real_subcommand_takes_quiet_at_the_end(tmp_path):
    missing = tmp_path / "none.tif"
    result = CliRunner().invoke(main, ["vectorize", str(missing), "--out", str(tmp_path / "o.gpkg"), "-q"])
    assert result.exit_code == 1 and "none.tif" in result.output


@pytest.mark.parametrize("command, cls", [("vectorize", VectorizeOptions), ("evaluate", EvaluateOptions)])
def test_cli_options_come_from_the_options_type(command, cls):
    cmd = main.get_command(click.Context(main), command)
    params = {p.name: p for p in cmd.params}
    defaults = cls()
    for f, meta, _ in settings(cls):
        param = params[f.name]
        assert f"--{f.name.replace('_', '-')}" in param.opts
        assert param.default == getattr(defaults, f.name) and param.help == meta.help


def test_step_options_hand_the_command_one_options_value():
    @click.command()
    @step_options(VectorizeOptions)
    def command(options: VectorizeOptions) -> None:
        click.echo(repr(options))

    result = CliRunner().invoke(command, ["--min-area", "10", "--regularize"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr(VectorizeOptions(min_area=10.0, regularize=True))
    bad = CliRunner().invoke(command, ["--block-size", "0"])
    assert bad.exit_code == 2 and "x>=1" in bad.output


@dataclass(frozen=True, kw_only=True)
class Named:
    name: str = setting("a", help="A name.")
    count: int | None = setting(None, minimum=1, maximum=3, help="How many.")

    def __post_init__(self) -> None:
        if self.name == "bad":
            raise ConfigError("name 'bad' is not allowed")


def test_checks_click_cannot_express_are_usage_errors():
    @click.command()
    @step_options(Named)
    def command(options: Named) -> None:
        click.echo(repr(options))

    assert CliRunner().invoke(command, ["--count", "2"]).output.strip() == repr(Named(count=2))
    assert CliRunner().invoke(command, ["--count", "4"]).exit_code == 2
    bad = CliRunner().invoke(command, ["--name", "bad"])
    assert bad.exit_code == 2 and "name 'bad' is not allowed" in bad.output


def test_evaluate_rejects_an_iou_threshold_of_zero(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "p.tif", "--truth", "t.tif", "--out", str(tmp_path / "r"),
                                       "--iou-threshold", "0"])
    assert result.exit_code == 2 and "0<x<=1" in result.output
