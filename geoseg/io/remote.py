"""Scenes read over HTTP: a Cloud-Optimized GeoTIFF named by an ``http(s)://`` or ``/vsicurl/`` URL.

GDAL's ``/vsicurl/`` reads only the byte ranges it needs (the header, then the
blocks of each window), so a COG on a web server or object store is read
tile by tile, from every worker, without being downloaded.

Only what the user names explicitly is fetched, and only over HTTP(S):
``https://host/scene.tif`` or ``/vsicurl/https://host/scene.tif`` (the same
thing).  No other GDAL virtual file system (``/vsizip/``, ``/vsis3/``, the
``/vsicurl?`` option syntax ...) and no other URL scheme (``file://``,
``ftp://``) is accepted, and GDAL still looks for no sidecar (``.msk``,
``.ovr``, ``.aux.xml``) beside the file: each would be another request to
another name.  A query string (a signed URL) is passed on as it is.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import InputError

__all__ = ["REMOTE_OPEN_OPTIONS", "gdal_path", "is_remote", "remote_url"]

VSICURL = "/vsicurl/"
_SCHEMES = ("http", "https")

#: GDAL settings around opening a remote scene (a dataset keeps them for its reads).
REMOTE_OPEN_OPTIONS: dict[str, str] = {
    # No folder listing and no sidecars: one file, the one named.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_PAM_ENABLED": "NO",
    # Transient HTTP errors (429, 502-504) are retried a few times.
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # Adjacent blocks are fetched in one request.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a remote scene (an ``http(s)://`` URL, or one behind ``/vsicurl/``)."""
    text = os.fspath(path)
    if not isinstance(text, str):
        return False
    text = text.removeprefix(VSICURL)
    return urlsplit(text).scheme.lower() in _SCHEMES and text.lower().startswith(("http://", "https://"))


def remote_url(path: str | os.PathLike[str]) -> str:
    """The checked ``http(s)://`` URL that ``path`` names; an InputError for anything else remote-looking."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InputError(f"{text!r} is not a URL")
    url = text.removeprefix(VSICURL)
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES or not url.lower().startswith(("http://", "https://")):
        raise InputError(
            f"{text!r} is not an http(s) URL; geoseg reads remote scenes from https:// (or /vsicurl/https://) URLs only"
        )
    if not parts.hostname:
        raise InputError(f"{text!r} names no host; give a full URL such as https://example.com/scene.tif")
    if any(c in url for c in "\r\n\t ") or "/vsi" in url.lower():
        raise InputError(f"{text!r} is not a plain URL (spaces, line breaks or a GDAL path inside it)")
    return url


def gdal_path(path: str | os.PathLike[str]) -> str:
    """What GDAL opens for a remote scene: ``/vsicurl/`` + the checked URL."""
    return VSICURL + remote_url(path)
