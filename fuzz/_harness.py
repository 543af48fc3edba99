"""Shared by the fuzz harnesses: run one under atheris (libFuzzer), or under hypothesis when atheris is missing.

    python fuzz/fuzz_card.py -max_total_time=180      # atheris: any libFuzzer flag
    python fuzz/fuzz_card.py --hypothesis 20000       # without atheris: that many hypothesis examples

A harness is ``check_one(data: bytes)``, which feeds ``data`` to one parser and
lets through only the errors that parser promises (geoseg's own); anything else
propagates and is a finding.  ``seeds()`` gives valid inputs to start from,
built by code and written to a fresh corpus folder at each run.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

Check = Callable[[bytes], None]


def run_hypothesis(check_one: Check, seeds: Iterable[bytes], examples: int) -> None:
    """``check_one`` on every seed, then on ``examples`` inputs hypothesis draws (bytes, and seeds mutated)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seed_list = list(seeds)
    for seed in seed_list:
        check_one(seed)

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seed_list))) if seed_list else bytearray()
        for _ in range(draw(st.integers(0, 8))):
            at = draw(st.integers(0, len(data)))
            kind = draw(st.integers(0, 2))
            if kind == 0 and data:  # flip a byte
                data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
            elif kind == 1:  # insert bytes
                data[at:at] = draw(st.binary(max_size=16))
            else:  # cut
                del data[at : at + draw(st.integers(0, 64))]
        return bytes(data)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=4096), mutated()))
    def fuzz(data: bytes) -> None:
        check_one(data)

    fuzz()


def main(check_one: Check, seeds: Callable[[], Iterable[bytes]]) -> None:
    """Fuzz ``check_one`` from the command line (atheris if installed)."""
    args = sys.argv[1:]
    if args[:1] == ["--hypothesis"]:
        run_hypothesis(check_one, seeds(), int(args[1]) if len(args) > 1 else 10_000)
        return
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris); fuzzing with hypothesis instead", file=sys.stderr)
        run_hypothesis(check_one, seeds(), 10_000)
        return
    corpus = Path(tempfile.mkdtemp(prefix="geoseg-fuzz-corpus-"))
    for i, seed in enumerate(seeds()):
        (corpus / f"seed{i}").write_bytes(seed)
    flags = [a for a in args if a.startswith("-")]
    dirs = [a for a in args if not a.startswith("-")] or [str(corpus)]
    atheris.Setup([sys.argv[0], "-timeout=20", "-rss_limit_mb=4096", *flags, *dirs], check_one)
    atheris.Fuzz()
