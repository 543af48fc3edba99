"""geoseg: land-cover maps and GIS-ready polygons from satellite and aerial scenes.

The public API is imported lazily, so ``import geoseg`` (and ``geoseg --help``)
stays fast and does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "ClassInfo": "geoseg.classes",
    "ModelCard": "geoseg.card",
    "Normalization": "geoseg.card",
    "Model": "geoseg.models",
    "load_model": "geoseg.models",
    "save_model": "geoseg.models",
    "create_network": "geoseg.models",
    "read_card": "geoseg.modelfile",
    "predict": "geoseg.prediction",
    "ResolutionWarning": "geoseg.prediction",
    "PredictResult": "geoseg.prediction",
    "GeoSegError": "geoseg.errors",
    "InputError": "geoseg.errors",
    "ModelError": "geoseg.errors",
    "ConfigError": "geoseg.errors",
    "LabelError": "geoseg.errors",
    "OutputExistsError": "geoseg.errors",
    "vectorize": "geoseg.vectorization",
    "VectorizeResult": "geoseg.vectorization",
    "train": "geoseg.training",
    "TrainResult": "geoseg.training",
    "TrainConfig": "geoseg.config",
    "load_config": "geoseg.config",
    "evaluate": "geoseg.evaluation",
    "run_batch": "geoseg.batch",
    "batch_status": "geoseg.batch",
    "BatchSummary": "geoseg.batch",
    "BatchConfig": "geoseg.batch_config",
    "load_batch_config": "geoseg.batch_config",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
