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
