"""Budgets: how large an input may be, checked right after it is opened and before any work starts.

A GeoTIFF can declare any size in a few bytes, and a strip of a compressed file
must be decoded whole to read any pixel of it; a YAML or JSON file can expand far
beyond its bytes.  Each budget comes with a message that names the file, the
values and what to do.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError, UsageError

__all__ = [
    "MAX_BLOCK_BYTES",
    "MAX_CONFIG_BYTES",
    "MAX_LIST_BYTES",
    "MAX_MODEL_BYTES",
    "MAX_MODEL_HEADER_BYTES",
    "MAX_RESAMPLE_FACTOR",
    "MAX_SCENE_BYTES",
    "MAX_SCENE_PIXELS",
    "MAX_STAC_BYTES",
    "MAX_STAC_FILES",
    "MAX_TAG_BYTES",
    "MAX_TILES",
    "MAX_VECTOR_BYTES",
    "MAX_YAML_ALIASES",
    "MAX_YAML_NODES",
    "check_block_budget",
    "check_geotiff_blocks",
    "check_raster_budget",
    "check_resample_factor",
    "check_tile_budget",
]

#: Pixels a scene may have (2^34: about 131 072 x 131 072, 4.7 hours at 1 MPix/s).
MAX_SCENE_PIXELS = 2**34
#: Decoded bytes of all bands of a scene (128 GiB).
MAX_SCENE_BYTES = 2**37
#: Decoded bytes of one compressed block or strip, which GDAL decodes whole for any pixel in it (64 MiB).
MAX_BLOCK_BYTES = 2**26
#: How many times finer or coarser ``--resample`` may make a scene, per axis.
MAX_RESAMPLE_FACTOR = 8.0
#: Bytes of a training or batch config.
MAX_CONFIG_BYTES = 2**20
#: Bytes of a batch list file (about 100 000 paths).
MAX_LIST_BYTES = 16 * 2**20
#: Bytes of one STAC JSON file, and how many files one catalog may reach.
MAX_STAC_BYTES = 16 * 2**20
MAX_STAC_FILES = 200_000
#: Bytes of a safetensors header (tensor table and model card).
MAX_MODEL_HEADER_BYTES = 16 * 2**20
#: Bytes of the class table tag of a class raster.
MAX_TAG_BYTES = 2**20
#: Bytes of a vector file (truth, labels, predicted polygons), which is read whole: 2 GiB.
MAX_VECTOR_BYTES = 2**31
#: Bytes of a model file, whose weights every worker holds in memory: 4 GiB.
MAX_MODEL_BYTES = 2**32
#: Aliases (``*name``) in one YAML document, and nodes once aliases are expanded.
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} bytes"


def check_raster_budget(name: str, *, width: int, height: int, count: int, dtype: str) -> None:
    """Refuse a raster whose declared size is beyond :data:`MAX_SCENE_PIXELS` or :data:`MAX_SCENE_BYTES`."""
    pixels = int(width) * int(height)
    decoded = pixels * int(count) * np.dtype(dtype).itemsize
    if pixels > MAX_SCENE_PIXELS:
        raise InputError(
            f"{name!r} declares {width} x {height} pixels ({pixels / 1e9:.3g} gigapixels), more than geoseg "
            f"processes in one run ({MAX_SCENE_PIXELS / 1e9:.3g}); cut it into parts first (gdal_retile.py)"
        )
    if decoded > MAX_SCENE_BYTES:
        raise InputError(
            f"{name!r} declares {_size(decoded)} of pixels ({width} x {height} x {count} bands of {dtype}), more "
            f"than geoseg processes in one run ({_size(MAX_SCENE_BYTES)}); cut it into parts first (gdal_retile.py)"
        )


def check_block_budget(name: str, *, block_width: int, block_height: int, samples: int, bits: int) -> None:
    """Refuse a compressed raster whose blocks (or strips) decode to more than :data:`MAX_BLOCK_BYTES` each."""
    decoded = int(block_width) * int(block_height) * int(samples) * max(1, math.ceil(bits / 8))
    if decoded > MAX_BLOCK_BYTES:
        raise InputError(
            f"{name!r} stores its pixels in compressed blocks of {block_width} x {block_height} pixels "
            f"({_size(decoded)} each once decoded, more than geoseg decodes at once, {_size(MAX_BLOCK_BYTES)}); "
            f"rewrite it tiled first (gdal_translate -co TILED=YES -co COMPRESS=DEFLATE {name} tiled.tif)"
        )


def check_resample_factor(name: str, *, scene_m: float, model_m: float) -> None:
    """Refuse ``--resample`` from ``scene_m`` to ``model_m`` metres per pixel beyond :data:`MAX_RESAMPLE_FACTOR`."""
    if not (math.isfinite(scene_m) and math.isfinite(model_m)) or scene_m <= 0 or model_m <= 0:
        raise InputError(f"{name!r}: ground resolution {scene_m} m or the model's {model_m} m is not a positive number")
    factor = scene_m / model_m
    if factor > MAX_RESAMPLE_FACTOR or factor < 1 / MAX_RESAMPLE_FACTOR:
        way = "upsample" if factor > 1 else "downsample"
        raise UsageError(
            f"{name!r} has {scene_m:.3g} m pixels and the model was trained at {model_m:.3g} m: --resample would "
            f"{way} it {max(factor, 1 / factor):.3g} times per axis, more than geoseg allows "
            f"({MAX_RESAMPLE_FACTOR:g}); use a model made for {scene_m:.3g} m imagery"
        )


def check_geotiff_blocks(path: str | os.PathLike[str], name: str) -> None:
    """Refuse a compressed GeoTIFF whose blocks or strips, read from its header, are beyond the block budget.

    A header this module cannot parse is left to GDAL (which opened the file): the size budget still applies.
    """
    from .tiff import read_tiff_layout

    try:
        layout = read_tiff_layout(path)
    except (ValueError, OSError):
        return
    if layout.compressed:
        check_block_budget(name, block_width=layout.block_width, block_height=layout.block_height,
                           samples=layout.samples_per_block, bits=layout.bits)


#: Tiles one prediction may run: more than a scene of the largest size has with 256-pixel tiles overlapping by 64.
MAX_TILES = 1_000_000


def check_tile_budget(name: str, *, tiles: int, tile_size: int, overlap: int) -> None:
    """Refuse a tile grid of more than :data:`MAX_TILES` tiles (a tiny tile with a large overlap, a huge scene)."""
    if tiles > MAX_TILES:
        raise InputError(
            f"{name!r} would be cut into {tiles} tiles of {tile_size} px (overlap {overlap}), more than geoseg runs "
            f"in one prediction ({MAX_TILES}); use a larger tile size or a smaller overlap, or cut the scene first"
        )
