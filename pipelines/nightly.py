"""The nightly job: process what is new or changed in the archive, then report any failures.

    python pipelines/nightly.py [--config configs/batch/nightly.yaml] [--scheduler tcp://host:8786] [-q]

The steps and their options are data, in the config (``steps: predict, vectorize``);
this job runs ``geoseg batch run`` on it and, when scenes failed, ``geoseg batch status``,
so the failures and their reasons land in cron's mail or the systemd journal.
Exit status as ``geoseg batch run``: 0 every scene done, 1 some failed, 2 config error or
another run still busy.  Scheduled by ``pipelines/cron/geoseg-nightly.cron`` or
``pipelines/systemd/geoseg-nightly.{service,timer}``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "batch" / "nightly.yaml"


def _geoseg(args: list[str]) -> int:
    from geoseg.cli import main

    try:
        main(args, prog_name="geoseg", standalone_mode=True)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("GEOSEG_BATCH_CONFIG", str(DEFAULT_CONFIG)))
    parser.add_argument("--scheduler", default=os.environ.get("GEOSEG_SCHEDULER"))
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar; only errors")
    args = parser.parse_args(argv)
    flags = ["-q"] if args.quiet else []
    run = [*flags, "batch", "run", "--config", args.config]
    if args.scheduler:
        run += ["--scheduler", args.scheduler]
    code = _geoseg(run)
    if code == 1:
        _geoseg(["batch", "status", "--config", args.config])
    return code


if __name__ == "__main__":
    sys.exit(main())
