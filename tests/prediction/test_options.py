"""Predict's options are declared once: the Python API's defaults and the CLI's options come from PredictOptions."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import geoseg
from geoseg.cli.predict import command
from geoseg.errors import ConfigError
from geoseg.prediction.options import PredictOptions


def test_api_defaults_are_the_options_defaults():
    signature = inspect.signature(geoseg.predict)
    for field in dataclasses.fields(PredictOptions):
        assert signature.parameters[field.name].default == field.default, field.name


def test_cli_offers_every_option_with_its_default():
    params = {p.name: p for p in command.params}
    for field in dataclasses.fields(PredictOptions):
        assert field.name in params, field.name
        assert params[field.name].default == field.default, field.name


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_devices_accepted(device):
    assert PredictOptions(device=device).device == device


@pytest.mark.parametrize("bad", [{"device": "gpu"}, {"device": "cuda:x"}, {"blend": "max"}, {"overlap": -1},
                                 {"batch_size": 0}, {"tile_size": 4}])
def test_bad_values_are_config_errors(bad):
    with pytest.raises(ConfigError):
        PredictOptions(**bad)
