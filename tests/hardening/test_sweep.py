"""The bad-input sweep (fuzz/bad_inputs.py) runs and prints its table; a few fast cases, the whole sweep by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SWEEP = Path(__file__).resolve().parents[2] / "fuzz" / "bad_inputs.py"


def test_the_sweep_lists_cases_for_every_command():
    proc = subprocess.run([sys.executable, str(SWEEP), "--list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    commands = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert commands == {"predict", "vectorize", "evaluate", "train", "batch", "model", "pseudo-label"}
    assert len(proc.stdout.splitlines()) >= 140


def test_a_few_sweep_cases_pass():
    proc = subprocess.run([sys.executable, str(SWEEP), "-k", "TIFF magic"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| total        |                3 |" in proc.stdout
