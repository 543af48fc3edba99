"""Opening rasters and vectors so that GDAL touches only the file the user named.

Rasters: GDAL looks for sidecars beside a GeoTIFF (``.msk`` masks, ``.ovr``
overviews, ``.aux.xml``, world files) and opens them with any driver, so a
``scene.tif.msk`` that is really a VRT reads another file or a URL.
:data:`RASTER_OPEN_OPTIONS` makes GDAL see an empty folder around the file (no
sidecar is even looked for), keeps its auxiliary-metadata files off (never read,
never written beside an input), and lets no remote file exist.  Set them around
``rasterio.open``: a dataset keeps the (empty) sibling list it was opened with.

Vectors: pyogrio opens any driver GDAL has, and an OGR VRT (XML) named
``labels.gpkg`` reads whatever it names.  :func:`check_vector_format` reads the
first bytes and refuses a file whose content is not the format its suffix says
(GeoPackage, GeoJSON, FlatGeobuf, ESRI Shapefile), before GDAL sees it.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

from ..errors import GeoSegError, InputError
from .limits import MAX_VECTOR_BYTES

__all__ = ["RASTER_OPEN_OPTIONS", "VECTOR_DRIVERS", "check_vector_format", "quiet_libtiff"]

RASTER_OPEN_OPTIONS: dict[str, str] = {
    # Sidecars (.msk, .ovr, .aux.xml, .tfw, .prj ...) are found through the folder listing: make it empty.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # Persistent auxiliary metadata (.aux.xml): neither read from nor written beside an input.
    "GDAL_PAM_ENABLED": "NO",
    # /vsicurl/ only reaches files with these extensions: none exist.
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".geoseg-no-network",
    "GDAL_HTTP_MAX_RETRY": "0",
}

#: Vector suffix -> the one GDAL driver that may read it.
VECTOR_DRIVERS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".shp": "ESRI Shapefile",
}

_SQLITE = b"SQLite format 3\x00"
_FLATGEOBUF = b"fgb\x03"
_SHAPEFILE = (9994).to_bytes(4, "big")


def _sniff(head: bytes, suffix: str) -> bool:
    if suffix == ".gpkg":
        return head.startswith(_SQLITE)
    if suffix in (".geojson", ".json"):
        text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
        return text.startswith(b"{")
    if suffix == ".fgb":
        return head.startswith(_FLATGEOBUF)
    if suffix == ".shp":
        return head.startswith(_SHAPEFILE)
    return False


def check_vector_format(path: str | os.PathLike[str], what: str, *, error: type[GeoSegError] = InputError) -> str:
    """The driver for ``path``'s suffix, after checking its first bytes are that format (not VRT XML, not a link).

    ``path`` must exist and be a regular file (see :func:`geoseg.safety.files.regular_file`).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    driver = VECTOR_DRIVERS.get(suffix)
    if driver is None:
        raise error(f"{what} {str(p)!r} is not a vector file geoseg reads; give one of {', '.join(VECTOR_DRIVERS)}")
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(256)
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r} ({exc.strerror or exc})") from None
    if size > MAX_VECTOR_BYTES:
        raise error(
            f"{what} {str(p)!r} is {size / 2**30:.1f} GiB, more than geoseg reads whole "
            f"({MAX_VECTOR_BYTES / 2**30:g} GiB); clip it to the scene first (ogr2ogr -spat xmin ymin xmax ymax)"
        )
    if not _sniff(head, suffix):
        kind = "XML (an OGR VRT that would read other files)" if head.lstrip().startswith(b"<") else "something else"
        raise error(
            f"{what} {str(p)!r} is named {suffix} but holds {kind}; give a real {driver} file "
            f"(ogr2ogr -f {driver!r} out{suffix} in)"
        )
    return driver


@functools.cache
def quiet_libtiff() -> bool:
    """Stop libtiff printing to the process's stderr itself; whether it could (Linux, libtiff loaded).

    A few libtiff messages (``_tiffWriteProc: No space left on device.`` when a disk fills mid-write) bypass
    GDAL's error handling and go straight to file descriptor 2, around geoseg's one-line error.  GDAL reports
    the same failure as an error of its own, which raises, so nothing is lost by dropping them.  Finds the
    libtiff that is loaded (the one GDAL uses) in ``/proc/self/maps`` and clears its error handler once.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split(maxsplit=5)[-1].strip() for line in fh if "libtiff" in line}
    except OSError:
        return False
    done = False
    for path in sorted(p for p in paths if p.startswith("/") and ".so" in p):
        try:
            lib = ctypes.CDLL(path)
            lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
            lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
            lib.TIFFSetErrorHandler(None)
            done = True
        except (OSError, AttributeError):
            continue
    return done
