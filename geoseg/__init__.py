"""geoseg: land-cover maps and GIS-ready polygons from satellite and aerial scenes.

The public API is imported lazily at run time, so ``import geoseg`` (and
``geoseg --help``) stays fast and does not import torch.  Type checkers see the
real imports below, so ``geoseg.predict`` has its real signature.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .batch import BatchSummary, batch_status, run_batch
    from .batch.config import BatchConfig, load_batch_config
    from .classes import ClassInfo
    from .errors import ConfigError, GeoSegError, InputError, LabelError, ModelError, OutputExistsError
    from .evaluation.api import evaluate
    from .model.card import ModelCard, Normalization
    from .model.file import read_card
    from .model.network import Model, create_network, load_model, save_model
    from .prediction.api import PredictResult, ResolutionWarning, predict
    from .training.api import TrainResult, train
    from .training.config import TrainConfig, load_config
    from .vectorization.api import VectorizeResult, vectorize

#: Public name -> the module that defines it.
_API = {
    "BatchConfig": "geoseg.batch.config",
    "BatchSummary": "geoseg.batch",
    "ClassInfo": "geoseg.classes",
    "ConfigError": "geoseg.errors",
    "GeoSegError": "geoseg.errors",
    "InputError": "geoseg.errors",
    "LabelError": "geoseg.errors",
    "Model": "geoseg.model.network",
    "ModelCard": "geoseg.model.card",
    "ModelError": "geoseg.errors",
    "Normalization": "geoseg.model.card",
    "OutputExistsError": "geoseg.errors",
    "PredictResult": "geoseg.prediction.api",
    "ResolutionWarning": "geoseg.prediction.api",
    "TrainConfig": "geoseg.training.config",
    "TrainResult": "geoseg.training.api",
    "VectorizeResult": "geoseg.vectorization.api",
    "batch_status": "geoseg.batch",
    "create_network": "geoseg.model.network",
    "evaluate": "geoseg.evaluation.api",
    "load_batch_config": "geoseg.batch.config",
    "load_config": "geoseg.training.config",
    "load_model": "geoseg.model.network",
    "predict": "geoseg.prediction.api",
    "read_card": "geoseg.model.file",
    "run_batch": "geoseg.batch",
    "save_model": "geoseg.model.network",
    "train": "geoseg.training.api",
    "vectorize": "geoseg.vectorization.api",
}

__all__ = [
    "BatchConfig",
    "BatchSummary",
    "ClassInfo",
    "ConfigError",
    "GeoSegError",
    "InputError",
    "LabelError",
    "Model",
    "ModelCard",
    "ModelError",
    "Normalization",
    "OutputExistsError",
    "PredictResult",
    "ResolutionWarning",
    "TrainConfig",
    "TrainResult",
    "VectorizeResult",
    "__version__",
    "batch_status",
    "create_network",
    "evaluate",
    "load_batch_config",
    "load_config",
    "load_model",
    "predict",
    "read_card",
    "run_batch",
    "save_model",
    "train",
    "vectorize",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
