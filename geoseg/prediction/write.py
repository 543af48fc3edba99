"""Writing class and confidence rasters as Cloud-Optimized GeoTIFFs, atomically.

Rows arrive band by band (in any order) and go to an uncompressed striped
GeoTIFF beside the destination (:class:`StagingRaster`); on
:meth:`CogWriter.commit` GDAL's COG driver copies it (tiled, compressed, with
overviews) to a temporary name, which is then renamed to the final path.
Nothing is left under the final name unless the whole raster was written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import check_writable, temporary_sibling
from ..tiling import PixelWindow

__all__ = ["StagingRaster", "CogWriter", "COG_OPTIONS", "GDAL_CACHE_BYTES", "class_colormap", "resample_into"]

COG_OPTIONS = {"COMPRESS": "DEFLATE", "BLOCKSIZE": 512, "OVERVIEW_RESAMPLING": "NEAREST", "BIGTIFF": "IF_SAFER"}
#: GDAL block cache for writing, in bytes (GDAL's default is 5 % of RAM).
GDAL_CACHE_BYTES = 64 * 1024 * 1024


class StagingRaster:
    """A temporary single-band uint8 GeoTIFF written by windows; removed by :meth:`remove`."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        crs: Any,
        transform: Any,
        nodata: int | None,
        colormap: Mapping[int, tuple[int, int, int]] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> None:
        import rasterio

        self.path = path
        self.width, self.height = width, height
        self._ds = rasterio.open(
            path, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8", crs=crs,
            transform=transform, nodata=nodata, tiled=False, blockysize=16, compress="NONE", BIGTIFF="IF_SAFER",
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

    def close(self) -> None:
        if not self._ds.closed:
            self._ds.close()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class CogWriter(StagingRaster):
    """A :class:`StagingRaster` beside ``path`` that :meth:`commit` turns into a COG at ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False, **kwargs: Any) -> None:
        self.final = check_writable(path, overwrite=overwrite)
        self.overwrite = overwrite
        super().__init__(temporary_sibling(self.final.with_suffix(".staging.tif")), **kwargs)

    def commit(self) -> Path:
        """Convert to a COG under a temporary name, then rename into place."""
        from rasterio.shutil import copy as rio_copy

        self.close()
        tmp = temporary_sibling(self.final)
        try:
            rio_copy(self.path, tmp, driver="COG", **COG_OPTIONS)
            check_writable(self.final, overwrite=self.overwrite)
            os.replace(tmp, self.final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            self.remove()
        return self.final


def resample_into(source: StagingRaster, target: StagingRaster, *, rows_per_strip: int = 512) -> None:
    """Nearest-neighbour resampling of ``source`` onto ``target``'s grid, strip by strip."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    source.close()
    t = target._ds
    with rasterio.open(source.path) as src, WarpedVRT(
        src, crs=t.crs, transform=t.transform, width=t.width, height=t.height, resampling=Resampling.nearest
    ) as vrt:
        for r0 in range(0, t.height, rows_per_strip):
            h = min(rows_per_strip, t.height - r0)
            strip = vrt.read(1, window=Window(0, r0, t.width, h))
            target.write(PixelWindow(r0, 0, h, t.width), strip)


def class_colormap(classes: Sequence[Any]) -> dict[int, tuple[int, int, int]]:
    return {c.id: c.color for c in classes}
