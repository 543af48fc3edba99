"""Training's packages come with the ``train`` extra; without them the message says how to install them."""

from __future__ import annotations

import importlib.util

import pytest

from geoseg.errors import GeoSegError
from geoseg.training.api import require_training_packages


def test_missing_training_packages_name_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightning" else real(name, *a))
    with pytest.raises(GeoSegError, match=r"lightning.*pip install 'geoseg\[train\]'"):
        require_training_packages()


def test_installed_training_packages_pass():
    require_training_packages()


def test_a_bad_config_is_refused_before_torch_or_lightning_is_imported(tmp_path):
    """A config error costs a YAML read, not the seconds of importing torch, torchgeo and Lightning."""
    import subprocess
    import sys

    config = tmp_path / "bad.yaml"
    config.write_text("scenes: 3\n")
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom geoseg.cli import main\n"
        f"args = ['train', '--config', {str(config)!r}, '--out', {str(tmp_path / 'm.safetensors')!r}]\n"
        "r = CliRunner().invoke(main, args)\n"
        "print(r.exit_code)\nprint(r.output.strip())\n"
        "print(','.join(m for m in ('torch', 'torchgeo', 'lightning') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    exit_code, message, heavy = (proc.stdout.splitlines() + [""])[:3]
    assert exit_code == "2" and "bad.yaml" in message and "scenes" in message
    assert heavy == ""
    assert not list(tmp_path.glob("m*"))
