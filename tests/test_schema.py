"""Options declared once: settings carry defaults, help and bounds for the API, the CLI and batch configs."""

from __future__ import annotations

import inspect

import pytest

from geoseg.batch.config import BatchConfig, PredictStep, VectorizeStep
from geoseg.errors import ConfigError
from geoseg.evaluation.api import evaluate
from geoseg.evaluation.options import EvaluateOptions
from geoseg.prediction.api import predict
from geoseg.prediction.options import PredictOptions
from geoseg.schema import check_settings, output_settings, settings
from geoseg.vectorization.api import vectorize
from geoseg.vectorization.options import VectorizeOptions

MINIMAL = {"input": {"folder": "scenes"}, "model": "m.safetensors", "output": "out"}


@pytest.mark.parametrize("cls, function", [(PredictOptions, predict), (VectorizeOptions, vectorize),
                                           (EvaluateOptions, evaluate)])
def test_api_defaults_are_the_options_defaults(cls, function):
    parameters = inspect.signature(function).parameters
    defaults = cls()
    for f, _, _ in settings(cls):
        assert parameters[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[f.name].default == getattr(defaults, f.name)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_area": -1.0}, "min_area must be >= 0, got -1.0"),
    ({"block_size": 0}, "block_size must be >= 1, got 0"),
])
def test_vectorize_options_check_their_bounds(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VectorizeOptions(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"iou_threshold": 0.0}, "iou_threshold must be > 0, got 0.0"),
    ({"iou_threshold": 1.5}, "iou_threshold must be <= 1, got 1.5"),
    ({"ignore_id": 255}, "ignore_id must be <= 254, got 255"),
])
def test_evaluate_options_check_their_bounds(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EvaluateOptions(**kwargs)


def test_check_settings_names_the_key_with_its_prefix():
    step = VectorizeStep(classes=("building",))
    object.__setattr__(step, "simplify", -2.0)
    with pytest.raises(ConfigError, match=r"^steps\.vectorize\.simplify must be >= 0, got -2\.0$"):
        check_settings(step, "steps.vectorize.")


def test_batch_vectorize_step_is_the_vectorize_options_plus_classes(tmp_path):
    cfg = BatchConfig.from_dict({**MINIMAL, "steps": {"vectorize": {"classes": ["building"]}}}, base_dir=tmp_path)
    step = cfg.steps.vectorize
    assert isinstance(step, VectorizeOptions)
    assert {f.name: getattr(step, f.name) for f, _, _ in settings(VectorizeOptions)} == vars(VectorizeOptions())
    assert step.output_options() == {"classes": ["building"], **output_settings(VectorizeOptions())}
    assert "block_size" not in step.output_options()


def test_batch_predict_step_is_the_predict_options_plus_confidence(tmp_path):
    cfg = BatchConfig.from_dict({**MINIMAL, "steps": {"predict": {"batch_size": 2}}}, base_dir=tmp_path)
    step = cfg.steps.predict
    assert isinstance(step, PredictOptions) and step == PredictStep(batch_size=2)
    assert step.output_options() == {**output_settings(PredictOptions()), "confidence": True}
    assert "batch_size" not in step.output_options()


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:12"])
def test_batch_config_accepts_every_device_the_worker_accepts(tmp_path, device):
    cfg = BatchConfig.from_dict({**MINIMAL, "steps": {"predict": {"device": device}}}, base_dir=tmp_path)
    assert cfg.steps.predict.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cuda1", "tpu"])
def test_batch_config_rejects_unknown_devices(tmp_path, device):
    with pytest.raises(ConfigError, match="is not auto, cpu, cuda or cuda:N"):
        BatchConfig.from_dict({**MINIMAL, "steps": {"predict": {"device": device}}}, base_dir=tmp_path)
