"""Opening scenes safely and reading windows of them.

:func:`inspect_scene` validates a GeoTIFF once and returns a small, picklable
:class:`SceneInfo`; :func:`read_window` opens the file by path inside whichever
process calls it and reads one window, padding outside the scene, together
with the per-pixel validity mask (nodata, internal mask or alpha band, and
non-finite values).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Imported here, once, rather than inside the functions: Dask runs tasks in several threads of a
# worker, and two threads importing rasterio's extension modules at the same time can see a
# half-initialised package.
import rasterio
import rasterio.crs
import rasterio.enums
import rasterio.errors
import rasterio.features
import rasterio.vrt
import rasterio.warp
import rasterio.windows
from affine import Affine
from numpy.typing import DTypeLike

from ..errors import GeoSegError, InputError
from ..safety.gdal import RASTER_OPEN_OPTIONS
from ..safety.limits import check_geotiff_blocks, check_raster_budget
from ..tiling import PixelWindow
from .remote import REMOTE_OPEN_OPTIONS, gdal_path, is_remote, remote_url

__all__ = [
    "SceneInfo", "Grid", "inspect_scene", "read_window", "read_overview", "open_raster", "open_on_grid",
    "check_input_path",
]

#: Drivers geoseg opens rasters with: a ".tif" that is really a VRT could read any local file.
RASTER_DRIVER = "GTiff"
#: Refuse declared sizes beyond this many pixels (decompression bombs); 2^36 ~ 262k x 262k.
MAX_PIXELS = 2**36


def check_input_path(path: str | os.PathLike[str], what: str = "input") -> Path:
    text = os.fspath(path)
    if text.startswith("/vsi") or text.startswith("<") or "?" in text or ":::" in text:
        raise InputError(f"{what} path {text!r} is not a plain file path; give a local GeoTIFF file")
    p = Path(text)
    if not p.exists():
        raise InputError(f"{what} {text!r} does not exist; check the path")
    if not p.is_file():
        raise InputError(f"{what} {text!r} is not a file")
    return p


def open_raster(path: str | os.PathLike[str]):
    """Open a GeoTIFF read-only with the GTiff driver only; a clear error otherwise."""
    if is_remote(path):  # an http(s) COG the user named, read by ranges
        return _open_remote(path)
    p = check_input_path(path)
    try:
        # No sidecar (.msk, .ovr, .aux.xml), nothing remote; an absolute path is never a GDAL connection string.
        with rasterio.Env(**RASTER_OPEN_OPTIONS):
            ds = rasterio.open(os.path.abspath(p), "r", driver=RASTER_DRIVER)
    except (rasterio.errors.RasterioIOError, TypeError) as exc:
        raise InputError(
            f"{str(p)!r} is not a readable GeoTIFF ({str(exc).splitlines()[0]}); check the file is a complete GeoTIFF"
        ) from None
    try:  # size and block budgets, before any pixel is read
        check_raster_budget(str(p), width=ds.width, height=ds.height, count=ds.count, dtype=ds.dtypes[0])
        check_geotiff_blocks(p, str(p))
    except BaseException:
        ds.close()
        raise
    return ds


def _open_remote(path: str | os.PathLike[str]):
    url = remote_url(path)
    try:
        with rasterio.Env(**REMOTE_OPEN_OPTIONS):
            ds = rasterio.open(gdal_path(url), "r", driver=RASTER_DRIVER)
    except (rasterio.errors.RasterioIOError, TypeError) as exc:
        raise InputError(
            f"{url!r} cannot be read as a GeoTIFF over HTTP ({str(exc).splitlines()[0]}); check the URL answers "
            "range requests with a complete (Cloud-Optimized) GeoTIFF"
        ) from None
    try:
        check_raster_budget(url, width=ds.width, height=ds.height, count=ds.count, dtype=ds.dtypes[0])
    except BaseException:
        ds.close()
        raise
    return ds


@dataclass(frozen=True)
class SceneInfo:
    """What geoseg needs to know about a scene; small and picklable."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    data_bands: tuple[int, ...]
    nodata: float | None
    resolution_m: float | None

    @property
    def affine(self):
        return Affine(*self.transform)

    @property
    def crs(self):
        return rasterio.crs.CRS.from_wkt(self.crs_wkt)


def _ground_resolution(ds) -> float | None:
    """Approximate ground sample distance in metres at the scene centre."""
    crs = ds.crs
    xres, yres = abs(ds.transform.a), abs(ds.transform.e)
    if crs.is_projected:
        factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        res = math.sqrt(xres * yres) * factor
        if crs.to_epsg() == 3857:  # Web Mercator metres shrink with cos(latitude)
            cx, cy = ds.xy(ds.height / 2, ds.width / 2)
            _, (lat,) = rasterio.warp.transform(crs, "EPSG:4326", [cx], [cy])
            res *= math.cos(math.radians(lat))
        return res
    if crs.is_geographic:
        cx, cy = ds.xy(ds.height / 2, ds.width / 2)
        return math.sqrt(xres * 111_320 * math.cos(math.radians(cy)) * yres * 110_574)
    return None


def inspect_scene(path: str | os.PathLike[str]) -> SceneInfo:
    """Open and validate a scene: GeoTIFF, georeferenced, north-up, sane size."""
    with open_raster(path) as ds:
        name = str(path)
        if ds.crs is None:
            raise InputError(f"{name!r} has no CRS; assign one first (gdal_edit.py -a_srs EPSG:XXXX {name})")
        t = ds.transform
        if t.is_identity or (ds.transform == ds.transform.__class__.identity() and not ds.gcps[0]):
            raise InputError(f"{name!r} has no geotransform; georeference it first (gdal_translate -a_ullr / gdalwarp)")
        if t.b != 0 or t.d != 0:
            raise InputError(
                f"{name!r} has a rotated or sheared geotransform {tuple(t)[:6]}; "
                f"warp it to north-up first (gdalwarp {name} north_up.tif)"
            )
        if t.e > 0:
            raise InputError(f"{name!r} is south-up (pixel height {t.e} > 0); warp it to north-up first (gdalwarp)")
        if ds.width * ds.height > MAX_PIXELS:
            raise InputError(
                f"{name!r} declares {ds.width}x{ds.height} pixels, more than geoseg accepts ({MAX_PIXELS})"
            )
        if len(set(ds.dtypes)) != 1:
            raise InputError(f"{name!r} mixes band dtypes {ds.dtypes}; convert it to one dtype first")
        data_bands = tuple(i + 1 for i, ci in enumerate(ds.colorinterp) if ci != rasterio.enums.ColorInterp.alpha)
        return SceneInfo(
            path=remote_url(path) if is_remote(path) else str(Path(path).resolve()),
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=ds.dtypes[0],
            crs_wkt=ds.crs.to_wkt(),
            transform=tuple(t)[:6],
            data_bands=data_bands,
            nodata=ds.nodata,
            resolution_m=_ground_resolution(ds),
        )


@dataclass(frozen=True)
class Grid:
    """A pixel grid in a scene's CRS: size and affine transform (as a 6-tuple)."""

    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]

    @classmethod
    def rescaled(cls, info: SceneInfo, factor: float) -> Grid:
        """The scene's extent on pixels ``factor`` times larger (``factor`` > 1 is coarser)."""
        t = info.affine * Affine.scale(factor)
        return cls(max(1, math.ceil(info.width / factor)), max(1, math.ceil(info.height / factor)), tuple(t)[:6])


@contextlib.contextmanager
def open_on_grid(path: str | os.PathLike[str], grid: Grid | None = None, *, resampling: str = "average") -> Iterator:
    """Open a scene as it is, or warped on the fly onto ``grid`` (masks follow)."""
    with open_raster(path) as ds:
        if grid is None:
            yield ds
            return
        with rasterio.vrt.WarpedVRT(
            ds, crs=ds.crs, transform=Affine(*grid.transform), width=grid.width, height=grid.height,
            resampling=rasterio.enums.Resampling[resampling],
        ) as vrt:
            yield vrt


def _failure_text(exc: BaseException) -> str:
    """First line of a GDAL error, kept as text: GDAL's exceptions do not survive pickling back to a Dask client."""
    text = str(exc.__cause__ or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _nodata_mask(ds: Any, bands: Sequence[int], data: np.ndarray) -> np.ndarray | None:
    """The dataset mask of ``data`` computed from the pixels already read, when the mask is nodata alone and
    ``data`` holds every band: a pixel is valid where any band differs from its nodata value (GDAL RFC 15, as
    :meth:`dataset_mask` says), so GDAL need not read the window again.  None when that does not apply."""
    if len(bands) != ds.count or sorted(bands) != list(range(1, ds.count + 1)):
        return None
    if any(flags != [rasterio.enums.MaskFlags.nodata] for flags in ds.mask_flag_enums):
        return None
    valid = np.zeros(data.shape[1:], bool)
    for i, band in enumerate(bands):
        nodata = ds.nodatavals[band - 1]
        if nodata is None:
            return None
        if np.isnan(nodata):
            band_valid = ~np.isnan(data[i])
        else:
            value = data.dtype.type(nodata)
            if value != nodata:  # not representable in the band's type: let GDAL decide
                return None
            band_valid = data[i] != value
        valid |= band_valid
    return valid


def read_window(
    path: str | os.PathLike[str],
    window: PixelWindow,
    bands: Sequence[int] = (1,),
    *,
    use_mask: bool = True,
    dataset: Any = None,
    dtype: DTypeLike | None = np.float32,
    what: str | None = None,
    error: type[GeoSegError] = InputError,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bands`` of ``window`` as ``(bands, h, w)`` and a bool validity mask ``(h, w)``: the one window reader.

    Valid means inside the raster, valid in the dataset mask (GDAL RFC 15:
    alpha band, internal mask, or nodata in all bands; skipped without
    ``use_mask``) and, for floating-point data, finite in every band.  The
    window may reach outside the raster: those pixels are zero and invalid;
    non-finite values read as zero.  ``dtype`` None keeps the file's type.
    Opens ``path`` itself unless an open ``dataset`` is given (only within one
    task; a :class:`rasterio.vrt.WarpedVRT` will do).  A failed read raises
    ``error`` naming the file (``what`` prefixes the name) and the rows and columns.
    """
    if dataset is None:
        with open_raster(path) as ds:
            return read_window(path, window, bands, use_mask=use_mask, dataset=ds, dtype=dtype, what=what, error=error)
    ds = dataset
    r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
    r1, c1 = min(window.row_off + window.height, ds.height), min(window.col_off + window.width, ds.width)
    out_dtype = np.dtype(ds.dtypes[bands[0] - 1] if dtype is None else dtype)
    shape = (len(bands), window.height, window.width)
    if r1 <= r0 or c1 <= c0:
        return np.zeros(shape, dtype=out_dtype), np.zeros(shape[1:], dtype=bool)
    win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
    dr, dc = r0 - window.row_off, c0 - window.col_off
    failure = None
    try:
        data = ds.read(list(bands), window=win)
        from_pixels = _nodata_mask(ds, bands, data) if use_mask else np.ones(data.shape[1:], bool)
        mask = ds.dataset_mask(window=win) > 0 if from_pixels is None else from_pixels
    except Exception as exc:  # noqa: BLE001 - GDAL raises several error types for corrupt data
        failure = _failure_text(exc)
    if failure is not None:  # raised outside the handler, so no GDAL exception rides along as its context
        name = f"{what} {str(path)!r}" if what else repr(str(path))
        raise error(
            f"{name}: reading rows {r0}:{r1}, cols {c0}:{c1} failed ({failure}); the file may be corrupt or truncated"
        )
    if np.issubdtype(data.dtype, np.floating):
        mask &= np.isfinite(data).all(axis=0)
    if data.shape == shape and data.dtype == out_dtype:  # all inside the raster: no copy needed
        out, valid = data, mask
    else:
        out = np.zeros(shape, dtype=out_dtype)
        valid = np.zeros(shape[1:], dtype=bool)
        out[:, dr : dr + data.shape[1], dc : dc + data.shape[2]] = data
        valid[dr : dr + data.shape[1], dc : dc + data.shape[2]] = mask
    if np.issubdtype(out_dtype, np.floating) and np.issubdtype(data.dtype, np.floating):
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out, valid


def read_overview(
    path: str | os.PathLike[str],
    bands: Sequence[int] = (1,),
    *,
    height: int,
    width: int,
    resampling: str = "nearest",
    dataset: Any = None,
    what: str | None = None,
    error: type[GeoSegError] = InputError,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole raster read decimated to ``height`` x ``width``: ``(bands, h, w)`` in its dtype, and validity.

    Validity is the dataset mask (as in :func:`read_window`) decimated with
    nearest neighbour, and finite values for floating-point data (non-finite
    values read as zero).  ``resampling`` names the data's resampling
    (``nearest`` for class ids, ``average`` for images).
    """
    if dataset is None:
        with open_raster(path) as ds:
            return read_overview(
                path, bands, height=height, width=width, resampling=resampling, dataset=ds, what=what, error=error
            )
    ds = dataset
    failure = None
    try:
        data = ds.read(
            list(bands), out_shape=(len(bands), height, width), resampling=rasterio.enums.Resampling[resampling]
        )
        valid = ds.dataset_mask(out_shape=(height, width), resampling=rasterio.enums.Resampling.nearest) > 0
    except Exception as exc:  # noqa: BLE001 - GDAL raises several error types for corrupt data
        failure = _failure_text(exc)
    if failure is not None:
        name = f"{what} {str(path)!r}" if what else repr(str(path))
        raise error(f"{name}: reading an overview failed ({failure}); the file may be corrupt or truncated")
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
        np.nan_to_num(data, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return data, valid
