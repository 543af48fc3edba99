"""Turning raw pixels into network input (pure numpy, shared by training and prediction)."""

from __future__ import annotations

import numpy as np

from .card import Normalization

__all__ = ["normalise"]


def normalise(data: np.ndarray, valid: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(x - mean) / std`` per band as float32, with invalid pixels set to 0.

    The same statistics apply to every tile of every scene (never decided per
    tile), so neighbouring tiles see consistent inputs.
    """
    mean = np.asarray(norm.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(norm.std, dtype=np.float32)[:, None, None]
    out = (data.astype(np.float32, copy=False) - mean) / std
    out *= valid[None]
    return out
