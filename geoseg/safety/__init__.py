"""Untrusted input, kept harmless: size budgets, bounded parsers, files and links the user named.

``limits``: the budgets every input is checked against before any work starts;
``files``: regular files only, reads with a size cap, paths confined to a root,
outputs that must not be inputs; ``tiff``: a GeoTIFF's block layout read from its
header (strip bombs); ``yaml``: YAML without alias bombs; ``gdal``: opening rasters
and vectors without sidecars, VRT indirection or network access.
"""

from __future__ import annotations

from .files import is_inside, read_capped, read_text_capped, regular_file, same_file
from .limits import (
    MAX_BLOCK_BYTES,
    MAX_CONFIG_BYTES,
    MAX_RESAMPLE_FACTOR,
    MAX_SCENE_BYTES,
    MAX_SCENE_PIXELS,
    MAX_STAC_BYTES,
    check_block_budget,
    check_geotiff_blocks,
    check_raster_budget,
    check_resample_factor,
)
from .yaml_loader import load_yaml

__all__ = [
    "MAX_BLOCK_BYTES",
    "MAX_CONFIG_BYTES",
    "MAX_RESAMPLE_FACTOR",
    "MAX_SCENE_BYTES",
    "MAX_SCENE_PIXELS",
    "MAX_STAC_BYTES",
    "check_block_budget",
    "check_geotiff_blocks",
    "check_raster_budget",
    "check_resample_factor",
    "is_inside",
    "load_yaml",
    "read_capped",
    "read_text_capped",
    "regular_file",
    "same_file",
]
