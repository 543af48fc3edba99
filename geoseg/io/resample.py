"""Resampled copies of scenes at a chosen ground resolution (for training at a common resolution).

The copy is written strip by strip through a WarpedVRT (average for images,
nearest for class rasters), so memory stays bounded; it is cached by the
source's fingerprint and the target resolution, and written atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from ..atomic import atomic_path
from .rasters import Grid, SceneInfo, open_on_grid

__all__ = ["resampled_copy"]

log = logging.getLogger(__name__)


def resampled_copy(
    info: SceneInfo, resolution_m: float, cache_dir: str | os.PathLike[str], *, categorical: bool = False
) -> Path:
    """A GeoTIFF of ``info``'s scene at ``resolution_m`` metres per pixel, in ``cache_dir``."""
    import rasterio
    from rasterio.windows import Window

    if info.resolution_m is None:
        raise ValueError(f"{info.path!r}: ground resolution unknown, cannot resample to {resolution_m} m")
    stat = os.stat(info.path)
    fingerprint = f"{info.path}|{stat.st_size}|{stat.st_mtime_ns}|{resolution_m}|{categorical}"
    key = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"{Path(info.path).stem}.{resolution_m:g}m.{key}.tif"
    if out.exists():
        return out
    grid = Grid.rescaled(info, resolution_m / info.resolution_m)
    log.info(
        "resampling %s from %.3g m to %.3g m (%dx%d px)",
        info.path, info.resolution_m, resolution_m, grid.width, grid.height,
    )
    resampling = "nearest" if categorical else "average"
    with open_on_grid(info.path, grid, resampling=resampling) as src:
        profile = {
            "driver": "GTiff", "width": grid.width, "height": grid.height, "count": src.count, "dtype": src.dtypes[0],
            "crs": src.crs, "transform": src.transform, "nodata": src.nodata, "tiled": True, "blockxsize": 256,
            "blockysize": 256, "compress": "deflate",
        }
        has_alpha = any(ci.name == "alpha" for ci in src.colorinterp)
        mask_needed = not categorical and src.nodata is None and not has_alpha
        with atomic_path(out, overwrite=True) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.colorinterp = src.colorinterp
            for r0 in range(0, grid.height, 256):
                win = Window(0, r0, grid.width, min(256, grid.height - r0))
                dst.write(src.read(window=win), window=win)
                if mask_needed:
                    dst.write_mask(src.dataset_mask(window=win), window=win)
    return out
