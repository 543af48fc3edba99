"""Writing class and confidence rasters as Cloud-Optimized GeoTIFFs, atomically.

Rows arrive band by band (in any order) and go to an uncompressed striped
GeoTIFF beside the destination; on :meth:`CogWriter.commit` GDAL's COG driver
copies it (tiled, compressed, with overviews) to a temporary name, which is
then renamed to the final path.  Nothing is left under the final name unless
the whole raster was written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .atomic import check_writable, temporary_sibling
from .tiling import PixelWindow

__all__ = ["CogWriter", "COG_OPTIONS", "GDAL_CACHE_BYTES", "class_colormap"]

COG_OPTIONS = {"COMPRESS": "DEFLATE", "BLOCKSIZE": 512, "OVERVIEW_RESAMPLING": "NEAREST", "BIGTIFF": "IF_SAFER"}
#: GDAL block cache for writing, in bytes (GDAL's default is 5 % of RAM).
GDAL_CACHE_BYTES = 256 * 1024 * 1024


class CogWriter:
    """A single-band uint8 raster written by windows and committed as a COG."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        crs: object,
        transform: object,
        nodata: int | None,
        colormap: Mapping[int, tuple[int, int, int]] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        overwrite: bool = False,
    ) -> None:
        import rasterio

        self.path = check_writable(path, overwrite=overwrite)
        self.overwrite = overwrite
        self._staging = temporary_sibling(self.path.with_suffix(".staging.tif"))
        self._ds = rasterio.open(
            self._staging,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype="uint8",
            crs=crs,
            transform=transform,
            nodata=nodata,
            tiled=False,
            blockysize=16,
            compress="NONE",
            BIGTIFF="IF_SAFER",
        )
        if colormap:
            self._ds.write_colormap(1, {int(k): tuple(v) + (255,) for k, v in colormap.items()})
        if tags:
            self._ds.update_tags(**tags)
        if description:
            self._ds.set_band_description(1, description)

    def write(self, window: PixelWindow, data: np.ndarray) -> None:
        from rasterio.windows import Window

        self._ds.write(data, 1, window=Window(window.col_off, window.row_off, window.width, window.height))

    def commit(self) -> Path:
        """Convert to a COG under a temporary name, then rename into place."""
        from rasterio.shutil import copy as rio_copy

        self._ds.close()
        tmp = temporary_sibling(self.path)
        try:
            rio_copy(self._staging, tmp, driver="COG", **COG_OPTIONS)
            check_writable(self.path, overwrite=self.overwrite)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            self._cleanup()
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._ds.close()
        self._cleanup()

    def _cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._staging.unlink()


def class_colormap(classes: Sequence[object]) -> dict[int, tuple[int, int, int]]:
    return {c.id: c.color for c in classes}
