"""Class rasters (one band of integer class ids): the one inspection and the one window reader for them.

Predictions, truth rasters and training label rasters are all class rasters.
:func:`inspect_class_raster` checks one the same way wherever it comes from (a
georeferenced, north-up GeoTIFF, see :func:`~geoseg.io.rasters.inspect_scene`,
with one integer band) and reads its class table and colour map.
:func:`read_class_window` reads a window of class ids through
:func:`~geoseg.io.rasters.read_window`: pixels outside the raster or invalid
in its mask (nodata, internal mask) read as :data:`~geoseg.classes.NODATA`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..classes import CLASSES_TAG, NODATA, VECTORIZE_TAG, ClassInfo, classes_from_json, vectorize_settings_from_json
from ..errors import GeoSegError, InputError
from ..tiling import PixelWindow
from .rasters import SceneInfo, inspect_scene, open_raster, read_window

__all__ = ["ClassRaster", "inspect_class_raster", "read_class_window"]


@dataclass(frozen=True)
class ClassRaster(SceneInfo):
    """A checked single-band integer class raster: a :class:`SceneInfo` with its class table and colours."""

    #: The class table from the GEOSEG_CLASSES tag, or None when the raster has none.
    scheme: tuple[ClassInfo, ...] | None = None
    #: The band's colour map as ``(id, (r, g, b))`` pairs (empty without one).
    colormap: tuple[tuple[int, tuple[int, int, int]], ...] = ()
    #: Vectorize settings recommended per class name by the model that wrote the raster (GEOSEG_VECTORIZE tag).
    vectorize: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the raster's CRS."""
        a, _, c, _, e, f = self.transform
        return (c, f + e * self.height, c + a * self.width, f)


def _inspect(path: str | os.PathLike[str], what: str) -> ClassRaster:
    info = inspect_scene(path)
    name = str(path)
    if info.count != 1:
        raise InputError(
            f"{what} {name!r} has {info.count} bands; a class raster has one band of class ids "
            "(the output of geoseg predict; gdal_translate -b 1 keeps one band)"
        )
    if not np.issubdtype(np.dtype(info.dtype), np.integer):
        raise InputError(
            f"{what} {name!r} holds {info.dtype} values; a class raster holds integer class ids "
            "(uint8, as written by geoseg predict; gdal_translate -ot Byte)"
        )
    with open_raster(path) as ds:
        tags = ds.tags()
        tag = tags.get(CLASSES_TAG)
        try:
            colormap = tuple(sorted((int(k), tuple(int(x) for x in v[:3])) for k, v in ds.colormap(1).items()))
        except ValueError:  # no colour map
            colormap = ()
    scheme = None
    if tag:
        try:
            scheme = classes_from_json(tag)
        except (GeoSegError, ValueError, TypeError) as exc:
            raise InputError(
                f"{what} {name!r}: the {CLASSES_TAG} tag is not a valid class table ({exc}); fix or remove the tag"
            ) from None
    vectorize: dict[str, dict[str, float]] = {}
    if tags.get(VECTORIZE_TAG) and scheme is not None:
        try:
            vectorize = vectorize_settings_from_json(tags[VECTORIZE_TAG], (c.name for c in scheme))
        except (GeoSegError, ValueError, TypeError) as exc:
            raise InputError(
                f"{what} {name!r}: the {VECTORIZE_TAG} tag is not valid ({exc}); fix or remove the tag"
            ) from None
    fields = {k: getattr(info, k) for k in SceneInfo.__dataclass_fields__}
    return ClassRaster(**fields, scheme=scheme, colormap=colormap, vectorize=vectorize)  # type: ignore[arg-type]


def inspect_class_raster(
    path: str | os.PathLike[str], *, what: str = "class raster", error: type[GeoSegError] = InputError
) -> ClassRaster:
    """Check that ``path`` is a georeferenced single-band integer class raster; read its class table and colours.

    ``what`` names the raster in messages; failures raise ``error`` (an
    :class:`~geoseg.errors.InputError` unless told, e.g. LabelError for training labels).
    """
    try:
        return _inspect(path, what)
    except InputError as exc:
        if error is InputError:
            raise
        raise error(str(exc)) from None


def read_class_window(
    path: str | os.PathLike[str],
    window: PixelWindow,
    *,
    dataset: Any = None,
    dtype: DTypeLike = np.int64,
    what: str | None = None,
    error: type[GeoSegError] = InputError,
) -> np.ndarray:
    """Class ids of ``window`` as ``dtype`` ``(h, w)``; :data:`NODATA` outside the raster and where it is invalid.

    ``dtype`` must hold the raster's values (int64 holds any; uint8 only a uint8 raster's).
    """
    data, valid = read_window(path, window, (1,), dataset=dataset, dtype=None, what=what, error=error)
    ids = data[0].astype(dtype, copy=False)
    ids[~valid] = NODATA
    return ids
