"""Small preview images of a scene, a class raster, truth labels and their differences.

Previews cover the prediction's whole extent on a coarse grid whose long side
is at most :data:`PREVIEW_MAX_SIDE` pixels.  Rasters are read with decimated
(``out_shape``) reads or warped straight onto that coarse grid, so memory does
not grow with the scene.  Colouring functions are pure and return RGBA arrays;
:func:`png_bytes` encodes them with Pillow.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...classes import NODATA, ClassInfo
from ...errors import InputError
from ...io.grid import overlaps_grid, rescaled_transform, same_grid
from ...io.rasters import SceneInfo, inspect_scene, open_raster, read_overview, read_window
from ...tiling import PixelWindow

__all__ = [
    "ERROR_COLOURS",
    "PREVIEW_MAX_SIDE",
    "colour_classes",
    "error_map",
    "png_bytes",
    "preview_shape",
    "read_class_preview",
    "read_scene_preview",
    "stretch",
]

#: Longest side of a preview image in pixels.
PREVIEW_MAX_SIDE = 1024
#: Colours (RGB) of the error map, by kind of pixel.
ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "correct": (46, 160, 67),
    "correct background": (225, 225, 225),
    "false positive (background predicted as a class)": (214, 39, 40),
    "false negative (class predicted as background)": (31, 119, 180),
    "wrong class": (255, 140, 0),
}
#: Colour of ignored truth pixels in the truth preview.
IGNORED_COLOUR = (170, 170, 170)


def preview_shape(height: int, width: int, max_side: int = PREVIEW_MAX_SIDE) -> tuple[int, int]:
    """``(height, width)`` scaled so the long side is at most ``max_side`` (never enlarged)."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_class_preview(path: str | os.PathLike[str], height: int, width: int) -> np.ndarray:
    """A class raster read decimated (nearest) to ``height`` x ``width``; 255 where masked."""
    (data,), valid = read_overview(path, height=height, width=width, resampling="nearest")
    out = data.astype(np.uint8)
    out[~valid] = NODATA
    return out


def stretch(data: np.ndarray, valid: np.ndarray, *, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Per-band percentile stretch of ``(bands, h, w)`` to uint8 over the valid pixels."""
    out = np.zeros(data.shape, dtype=np.uint8)
    for b in range(data.shape[0]):
        values = data[b][valid]
        if values.size == 0:
            continue
        lo, hi = np.percentile(values, [low, high])
        if hi <= lo:
            hi = lo + 1.0
        out[b] = np.clip((data[b].astype(np.float64) - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
    out[:, ~valid] = 0
    return out


def read_scene_preview(image: str | os.PathLike[str], grid: SceneInfo, height: int, width: int) -> np.ndarray:
    """The scene as stretched RGBA on the preview grid of ``grid`` (first three data bands, or grey)."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    info = inspect_scene(image)
    whole = PixelWindow(0, 0, height, width)
    bands = list(info.data_bands[:3]) if len(info.data_bands) >= 3 else [info.data_bands[0]] * 3
    with open_raster(image) as ds:
        if not overlaps_grid(transform_bounds(ds.crs, grid.crs, *ds.bounds, densify_pts=21), grid):
            raise InputError(f"image {str(image)!r} does not overlap the prediction; check both cover the same area")
        if same_grid(ds, grid):
            data, valid = read_overview(
                image, bands, height=height, width=width, resampling="average", dataset=ds, what="image"
            )
        else:
            with WarpedVRT(
                ds,
                crs=grid.crs,
                transform=rescaled_transform(grid, height, width),
                width=width,
                height=height,
                resampling=Resampling.bilinear,
                add_alpha=ds.nodata is None and info.count == len(info.data_bands),
            ) as vrt:
                data, valid = read_window(image, whole, bands, dataset=vrt, dtype=None, what="image")
    rgb = stretch(data, valid)
    return np.dstack([rgb[0], rgb[1], rgb[2], np.where(valid, 255, 0).astype(np.uint8)])


def _palette(classes: Sequence[ClassInfo]) -> np.ndarray:
    lut = np.zeros((256, 4), dtype=np.uint8)
    for c in classes:
        lut[c.id] = (*c.color, 255)
    return lut


def colour_classes(ids: np.ndarray, classes: Sequence[ClassInfo], *, ignore_id: int | None = None) -> np.ndarray:
    """RGBA image of class ids; nodata (and ids outside the table) transparent, the ignore id grey."""
    lut = _palette(classes)
    if ignore_id is not None:
        lut[ignore_id] = (*IGNORED_COLOUR, 255)
    lut[NODATA] = (0, 0, 0, 0)
    return lut[ids]


def error_map(
    truth: np.ndarray, prediction: np.ndarray, *, background_id: int | None, ignore_id: int | None
) -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
    """RGBA image of agreement between truth and prediction, and the legend of the colours used.

    Correct pixels are green (pale grey where both say background), background
    predicted as a class red (false positive), a class predicted as
    background blue (false negative), one class taken for another orange.
    Without a background class only correct (green) and wrong (orange) remain.
    Pixels left out of the metrics (nodata, ignore id) are transparent.
    """
    valid = (truth != NODATA) & (prediction != NODATA)
    if ignore_id is not None:
        valid &= truth != ignore_id
    correct = valid & (truth == prediction)
    wrong = valid & ~correct
    out = np.zeros((*truth.shape, 4), dtype=np.uint8)
    kinds: dict[str, np.ndarray] = {}
    if background_id is not None:
        truth_bg, pred_bg = truth == background_id, prediction == background_id
        kinds["correct background"] = correct & truth_bg
        kinds["correct"] = correct & ~truth_bg
        kinds["false positive (background predicted as a class)"] = wrong & truth_bg
        kinds["false negative (class predicted as background)"] = wrong & pred_bg
        kinds["wrong class"] = wrong & ~truth_bg & ~pred_bg
    else:
        kinds["correct"] = correct
        kinds["wrong class"] = wrong
    legend = {}
    for kind, where in kinds.items():
        colour = ERROR_COLOURS[kind]
        out[where] = (*colour, 255)
        legend[kind] = colour
    return out, legend


def png_bytes(rgba: np.ndarray | Any) -> bytes:
    """PNG encoding of an RGBA/RGB array or a Pillow image."""
    from PIL import Image

    image = rgba if isinstance(rgba, Image.Image) else Image.fromarray(np.ascontiguousarray(rgba))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
