"""The options of :func:`geoseg.vectorize`, declared once.

``geoseg vectorize`` builds its options from :class:`VectorizeOptions`, the
batch config's ``steps.vectorize`` extends it, and :func:`geoseg.vectorize`
takes its defaults from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import check_settings, setting

__all__ = ["DEFAULT_MIN_AREA", "DEFAULT_MIN_SEED_AREA", "VectorizeOptions"]

#: ``min_area`` and ``min_seed_area`` (m²) of classes for which the class raster recommends none.
DEFAULT_MIN_AREA, DEFAULT_MIN_SEED_AREA = 4.0, 1.0


@dataclass(frozen=True, kw_only=True)
class VectorizeOptions:
    """How class pixels become polygons; areas in square metres and lengths in metres whatever the CRS."""

    min_area: float | None = setting(
        None, minimum=0, help="Drop objects smaller than this many square metres [default: for each class, what the "
        "model that wrote the raster recommends (the shipped building model: 20), else 4]."
    )
    simplify: float = setting(0.5, minimum=0, help="Simplification tolerance in metres (0: none).")
    fill_holes: float = setting(1.0, minimum=0, help="Fill holes smaller than this many square metres.")
    regularize: bool = setting(False, help="Square building outlines (right angles along their orientation).")
    rectangles: bool = setting(
        True, help="Finish vehicles as oriented rectangles where their outline fills one (see geoseg.vectorization."
        "rectangles); --no-rectangles keeps the traced outlines."
    )
    split: bool = setting(
        True, help="Split touching buildings, where the class raster has a part sidecar (predicted bodies, "
        "borders and contacts; geoseg predict writes <out stem>.parts.tif for models with parts)."
    )
    min_seed_area: float | None = setting(
        None, minimum=0, help="Split: a predicted building body smaller than this many square metres is no building "
        "of its own [default: what the model recommends (the shipped building model: 4), else 1]."
    )
    rfc7946: bool = setting(
        True, help="GeoJSON output as RFC 7946 says: WGS 84 longitude/latitude; --no-rfc7946 keeps the raster's "
        "CRS (the older GeoJSON 2008 convention, which some tools still expect)."
    )
    block_size: int = setting(
        4096, minimum=1, output=False, help="Block size in pixels (memory per task grows with its square)."
    )

    def __post_init__(self) -> None:
        check_settings(self)
