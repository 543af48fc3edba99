"""The options of :func:`geoseg.predict`, declared once.

``geoseg predict`` builds its options from :class:`PredictOptions` and
:func:`geoseg.predict` takes its defaults from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from ..schema import check_settings, setting
from .techniques import REFINE_MODES, TTA_MODES

__all__ = ["BLEND_MODES", "DEVICE_PATTERN", "PredictOptions", "check_device_name"]

BLEND_MODES = ("hann", "crop")
#: ``auto``, ``cpu``, ``cuda`` (every visible GPU) or ``cuda:N`` (one GPU).
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device_name(device: str, where: str = "device") -> str:
    """``device`` if it is auto, cpu, cuda or cuda:N; a :class:`~geoseg.errors.ConfigError` otherwise."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError(f"{where} {device!r} is not auto, cpu, cuda or cuda:N")
    return device


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """How a scene is cut into tiles, blended back together and run through the network."""

    tile_size: int | None = setting(None, minimum=8, help="Tile size in pixels [default: the model's].")
    overlap: int = setting(64, minimum=0, help="Overlap between tiles in pixels.")
    blend: str = setting("hann", choices=BLEND_MODES, help="How overlapping tiles are combined.")
    batch_size: int = setting(8, minimum=1, output=False, help="Tiles per network call.")
    device: str = setting("auto", help="auto, cpu, cuda (every GPU) or cuda:N (one GPU).")
    resample: bool = setting(
        False, help="Read the scene at the model's ground resolution and resample the result back."
    )
    read_threads: int | None = setting(
        None, minimum=1, output=False,
        help="Threads decoding the scene [default: on the CPU each lane decodes its own; one per core with GPUs].",
    )
    tta: str = setting(
        "none", choices=TTA_MODES,
        help="Test-time augmentation: average over flips (4 views) or the 8 rotations and mirrorings (d4).",
    )
    refine: str = setting(
        "none", choices=REFINE_MODES,
        help="Edge-aware refinement: 'guided' filters each tile's class probabilities with the tile as guide, so "
        "class edges follow image edges (about 1 s per megapixel on a CPU).",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        check_device_name(self.device)
