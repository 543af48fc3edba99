"""Bad inputs across the five commands: does each give a clean one-line error and leave nothing behind?

    python fuzz/bad_inputs.py                 # every case, a table by command at the end
    python fuzz/bad_inputs.py -k resample     # cases whose name holds "resample"
    python fuzz/bad_inputs.py --list          # the cases, without running them

Each case of ``fuzz/sweep_cases.py`` gets an empty folder in a temporary
directory, builds its fixtures there, and runs ``geoseg -q <command> ...`` in a
subprocess.  A case passes when: the exit status is 1 or 2 (the one the case
names, if it names one; 0 for the cases where a sidecar must be ignored); stderr
is one line starting with ``Error:`` and without a traceback (for a usage error
click's usual "Usage:" and "Try --help" lines may come first; a batch whose one
bad scene failed prints ``failed: <scene>: <reason>`` instead); every file in the
folder is unchanged and nothing new is there (beyond what the case allows); it
ends within its time budget; and nothing asked the canary HTTP server for
anything.  Cases that need a read-only or full disk mount a small tmpfs (root
only; skipped otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "fuzz")]

from sweep_cases import CASES, Case, Env  # noqa: E402

COMMANDS = ("predict", "vectorize", "evaluate", "train", "batch", "model", "pseudo-label")


class _Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def _answer(self) -> None:
        _Canary.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def canary() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that records every request (nothing geoseg reads should reach it)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok


@contextlib.contextmanager
def mounted(folder: Path, mounts: tuple[tuple[str, str], ...]) -> Iterator[None]:
    """Small tmpfs mounts inside ``folder``: ``ro`` read-only, ``full`` 16 KiB, ``full:<size>`` that size."""
    done = []
    try:
        for name, kind in mounts:
            target = folder / name
            target.mkdir()
            # "ro": read-only; "full": 16 KiB; "full:256k": a disk of that size, to fill mid-write
            options = "size=64k,ro" if kind == "ro" else f"size={kind.partition(':')[2] or '16k'}"
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in done:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: files by sha256 (FIFOs and devices by kind), links by target."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


@dataclass(frozen=True)
class Outcome:
    case: Case
    ok: bool
    why: str
    seconds: float
    stderr: str


def _check(case: Case, code: int | None, stderr: str, before: dict[str, str], after: dict[str, str],
           hits: int) -> str:
    """Why the run broke the promise, or ``""``."""
    if code is None:
        return f"no answer within {case.timeout:.0f} s (hang)"
    if case.code == 0:
        if code != 0:
            return f"exit {code}, expected success: {stderr.strip()[-300:]}"
    else:
        if code not in (1, 2):
            return f"exit {code}, expected 1 or 2"
        if case.code is not None and code != case.code:
            return f"exit {code}, expected {case.code}"
        lines = [line for line in stderr.splitlines() if line.strip()]
        if code == 2 and len(lines) == 3 and lines[0].startswith("Usage:") and lines[1].startswith("Try "):
            lines = lines[2:]  # click's usage error: usage line, help hint, then the one-line error
        prefixes = ("Error:", "failed:") if case.command == "batch" else ("Error:",)  # batch: a line per failed scene
        if "Traceback" in stderr or len(lines) != 1 or not lines[0].startswith(prefixes):
            return f"not one line: {stderr.strip()[-300:]!r}"
        if case.mentions and case.mentions not in lines[0]:
            return f"does not name {case.mentions!r}: {lines[0][:200]}"
    changed = sorted(k for k in before if after.get(k) != before[k])
    added = sorted(k for k in after if k not in before and not any(fnmatch.fnmatch(k, g) for g in case.allowed))
    if changed:
        return f"changed or removed inputs: {changed[:3]}"
    if added:
        return f"left behind: {added[:3]}"
    if hits:
        return f"touched the network ({hits} request(s) to the canary)"
    return ""


def run_case(case: Case, env: Env, root: Path) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    started = time.perf_counter()
    with mounted(folder, case.mounts):
        argv = case.build(folder, env)
        before = snapshot(folder)
        hits = len(_Canary.hits)
        proc = subprocess.Popen([sys.executable, "-m", "geoseg", "-q", *argv], cwd=folder, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=case.timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this run started, nothing else
            _, stderr = proc.communicate()
            code = None
        seconds = time.perf_counter() - started
        after = snapshot(folder)
        why = _check(case, code, stderr, before, after, len(_Canary.hits) - hits)
    return Outcome(case, not why, why, seconds, stderr)


def build_env(root: Path, canary_url: str) -> Env:
    from support.nets import tiny_unet

    model = tiny_unet(tile_size=128).save(root / "tiny.safetensors")
    return Env(canary=canary_url, tiny_model=model, can_mount=can_mount())


def table(outcomes: list[Outcome]) -> str:
    tried, clean = Counter(o.case.command for o in outcomes), Counter(o.case.command for o in outcomes if o.ok)
    rows = [f"| {'command':<12} | {'bad inputs tried':>16} | {'clean (one line, exit 1/2, nothing left)':>42} |",
            f"|{'-' * 14}|{'-' * 18}|{'-' * 44}|"]
    for command in COMMANDS:
        if tried[command]:
            rows.append(f"| {command:<12} | {tried[command]:>16} | {clean[command]:>42} |")
    rows.append(f"| {'total':<12} | {sum(tried.values()):>16} | {sum(clean.values()):>42} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="pattern", default="", help="run only cases whose command or name holds this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each case's stderr")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.pattern.lower() in f"{c.command}: {c.name}".lower()]
    if args.list:
        for c in cases:
            print(f"{c.command:<10} {c.name}")
        return 0
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="geoseg-bad-inputs-") as tmp, canary() as url:
        root = Path(tmp)
        env = build_env(root, url)
        for c in cases:
            if c.mounts and not env.can_mount:
                print(f"skip  {c.command:<10} {c.name} (needs root to mount a tmpfs)", flush=True)
                continue
            outcome = run_case(c, env, root)
            outcomes.append(outcome)
            mark = "ok  " if outcome.ok else "FAIL"
            why = f"  -- {outcome.why}" if outcome.why else ""
            print(f"{mark}  {c.command:<10} {c.name}  ({outcome.seconds:.1f} s){why}", flush=True)
            if args.verbose and outcome.stderr.strip():
                print("      " + outcome.stderr.strip().replace("\n", "\n      ")[-1500:])
    print()
    print(table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
