"""The options of :func:`geoseg.evaluate`, declared once.

``geoseg evaluate`` builds its options from :class:`EvaluateOptions` and
:func:`geoseg.evaluate` takes its defaults from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..classes import NODATA
from ..schema import check_settings, setting

__all__ = ["EvaluateOptions"]


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions:
    """What is compared and when a predicted polygon matches a truth polygon."""

    ignore_id: int | None = setting(
        None, minimum=0, maximum=NODATA - 1, help="Truth class id left out of every figure (e.g. 0 for unlabelled)."
    )
    iou_threshold: float = setting(
        0.5, minimum=0, min_open=True, maximum=1, help="IoU a predicted polygon needs with a truth polygon to match it."
    )
    class_column: str = setting("class_id", help="Column of class ids in vector truth.")

    def __post_init__(self) -> None:
        check_settings(self)
