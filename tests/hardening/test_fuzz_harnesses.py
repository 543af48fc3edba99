"""A short run of each fuzz harness in fuzz/: every input ends in a geoseg error or a result, never another exception.

The long runs (minutes each, with atheris) are ``python fuzz/fuzz_<name>.py -max_total_time=300``.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
HARNESSES = ["fuzz_card", "fuzz_yaml", "fuzz_class_table", "fuzz_stac", "fuzz_tiff"]


@pytest.fixture(scope="module", autouse=True)
def fuzz_on_path():
    sys.path.insert(0, str(FUZZ))
    yield
    sys.path.remove(str(FUZZ))


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_with_hypothesis(name):
    harness = importlib.import_module(name)
    from _harness import run_hypothesis

    run_hypothesis(harness.check_one, harness.seeds(), examples=60)


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_with_atheris_for_a_few_seconds(name):
    proc = subprocess.run([sys.executable, str(FUZZ / f"{name}.py"), "-max_total_time=4", "-timeout=10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done " in proc.stderr
