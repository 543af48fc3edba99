"""``geoseg batch run`` and ``geoseg batch status``."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import click

from .options import scheduler_option, show_progress, user_errors

config_option = click.option(
    "--config", "config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Batch config (YAML), e.g. configs/batch/nightly.yaml.",
)


def batch_errors() -> contextlib.AbstractContextManager[None]:
    """Config errors and a busy manifest exit 2, other geoseg errors 1, an interruption 130."""
    from ..batch import BatchLockedError

    return user_errors(usage=(BatchLockedError,),
                       interrupted="Interrupted; finished scenes are recorded and the next run does the rest.")


def _terminate_gracefully() -> None:
    """SIGTERM (systemd stop, kill) unwinds like Ctrl-C, so the run records where it stopped."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.group("batch")
def command() -> None:
    """Process an imagery archive, resumably: only new or changed scenes, on Dask.

    The manifest (SQLite, by default <output>/manifest.sqlite) records every
    scene; reruns skip scenes already done under the same key.  Exit status:
    0 all scenes done, 1 some failed, 2 usage or config error (or another run
    holds the manifest).
    """


@command.command("run")
@config_option
@scheduler_option
@click.option("--dry-run", is_flag=True, help="List what would be processed and why; change nothing.")
@click.option("--retry-failed", is_flag=True, help="Also retry scenes that failed permanently before.")
@click.pass_context
def run(ctx: click.Context, config: Path, scheduler: str | None, dry_run: bool, retry_failed: bool) -> None:
    """Process the archive named in CONFIG: every scene not yet done under its current key."""
    _terminate_gracefully()
    with batch_errors():
        from ..batch import run_batch

        summary = run_batch(config, scheduler=scheduler, dry_run=dry_run, retry_failed=retry_failed,
                            progress=show_progress(ctx))
    if dry_run:
        click.echo(f"would process {len(summary.planned)} of {summary.total} scene(s) "
                   f"({summary.up_to_date} up to date, {len(summary.failed)} failed and not retried)")
        for scene in summary.planned:
            click.echo(f"  {scene.reason:<16} {scene.scene_id}  {scene.source}")
        for failure in summary.failed:
            click.echo(f"  {'failed':<16} {failure.scene_id}  {failure.reason}")
        sys.exit(0)
    if show_progress(ctx):
        click.echo(
            f"{summary.processed} processed, {summary.up_to_date} up to date, {len(summary.failed)} failed "
            f"of {summary.total} scene(s) in {summary.seconds:.1f} s; log: {summary.log}", err=True,
        )
    for failure in summary.failed:
        click.echo(f"failed: {failure.scene_id}: {failure.reason}", err=True)
    sys.exit(summary.exit_code)


@command.command("status")
@config_option
def status(config: Path) -> None:
    """Scenes by status, failures with their reasons, and the last run."""
    with batch_errors():
        from ..batch import batch_status

        st = batch_status(config)
    if not st.exists:
        click.echo(f"no manifest yet at {st.manifest}; run `geoseg batch run --config {config}` first")
        return
    click.echo(f"manifest: {st.manifest}")
    click.echo(", ".join(f"{name} {n}" for name, n in st.counts.items()) + f" (total {st.total})")
    if st.last_run:
        run = st.last_run
        state = run.get("outcome") or "running or killed"
        click.echo(f"last run: started {_when(run['started_at'])}, {state}; "
                   f"{run.get('done') or 0} processed, {run.get('failed') or 0} failed; log: {run.get('log')}")
    if st.failures:
        click.echo("failed:")
        for failure in st.failures:
            click.echo(f"  {failure.scene_id} [{failure.kind}] {failure.reason}")


def _when(timestamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
