"""Reading a local static STAC catalog as the input of a batch: its items' GeoTIFF assets.

The catalog is untrusted JSON.  Every file is read with a size cap and must be a
regular file; the walk over ``child`` and ``item`` links is iterative and visits
at most :data:`~geoseg.safety.limits.MAX_STAC_FILES` files; any value of the
wrong JSON type is skipped (a link) or makes its item fail with a reason (an
asset), never a traceback.  Links and assets must stay inside ``root`` (the
catalog's folder) once every symlink is resolved, unless ``allow_outside``:
``/etc/passwd``, ``../../elsewhere.tif`` and ``/vsicurl/...`` hrefs become
scenes that fail with a reason; remote (``http``) links are skipped, remote
assets fail, since batch reads local files only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import ConfigError
from ..safety.files import is_inside, read_text_capped
from ..safety.limits import MAX_STAC_BYTES, MAX_STAC_FILES

__all__ = ["StacScene", "read_stac_catalog"]

log = logging.getLogger(__name__)

_CONTAINERS = ("Catalog", "Collection")


@dataclass(frozen=True)
class StacScene:
    """A GeoTIFF asset of an input STAC item."""

    item_id: str
    href: str  # absolute local path, or the original href if it is not local
    item_href: str
    when: Mapping[str, Any] | None
    error: str | None = None


def _local(href: str, base: Path) -> str | None:
    """An href as an absolute local path (``..`` folded, links kept), or ``None`` if remote or malformed."""
    if "\0" in href:
        return None
    try:
        parsed = urlparse(href)
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 address)
        return None
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(href)
        return os.path.normpath(path if path.is_absolute() else base / path)
    return None


def _load_json(path: Path) -> Any:
    text = read_text_capped(path, "STAC file", MAX_STAC_BYTES, error=ConfigError)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"STAC file {str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"STAC file {str(path)!r} nests lists or objects too deeply to read") from None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_geotiff(asset: Mapping[str, Any]) -> bool:
    media = str(asset.get("type", "")).lower()
    href = str(asset.get("href", "")).lower()
    return "geotiff" in media or "image/tiff" in media or href.endswith((".tif", ".tiff"))


def _pick_asset(item: Mapping[str, Any], key: str | None) -> tuple[str | None, str | None]:
    """``(href, error)`` of the asset to read from an item."""
    label = repr(item.get("id"))[:100]
    assets = item.get("assets")
    assets = assets if isinstance(assets, Mapping) else {}
    if key is not None:
        chosen = assets.get(key)
        if not isinstance(chosen, Mapping):
            names = ", ".join(map(str, assets)) or "none"
            return None, f"STAC item {label} has no asset {key!r} (assets: {names[:200]})"
        href = _text(chosen.get("href"))
        return href, None if href else f"STAC item {label}: asset {key!r} has no href"
    tiffs = [(k, a) for k, a in assets.items() if isinstance(a, Mapping) and _is_geotiff(a)]
    if not tiffs:
        return None, f"STAC item {label} has no GeoTIFF asset; name one with input.asset"
    tiffs.sort(key=lambda ka: "data" not in (roles if isinstance(roles := ka[1].get("roles"), list) else []))
    href = _text(tiffs[0][1].get("href"))
    return href, None if href else f"STAC item {label}: its GeoTIFF asset has no href"


def _when(props: Any) -> dict[str, Any] | None:
    if not isinstance(props, Mapping):
        return None
    if _text(props.get("datetime")):
        return {"datetime": props["datetime"]}
    if _text(props.get("start_datetime")) and _text(props.get("end_datetime")):
        return {"datetime": None, "start_datetime": props["start_datetime"], "end_datetime": props["end_datetime"]}
    return None


def _outside(target: str, root: Path, what: str) -> str:
    return (f"{what} {target!r} lies outside the archive {str(root)!r} (or links out of it); "
            "move it inside, or set input.allow_outside: true to read it anyway")


def read_stac_catalog(
    path: str | os.PathLike[str], *, asset: str | None = None, root: str | os.PathLike[str] | None = None,
    allow_outside: bool = False,
) -> list[StacScene]:
    """The GeoTIFF assets of every item reachable from a local catalog, collection, item or item collection.

    Follows ``child`` and ``item`` links that are local files inside ``root`` (default: the catalog's
    folder); remote links are skipped with a warning; remote assets, assets outside ``root`` and links
    out of it become scenes that fail with a clear reason.
    """
    start = Path(path)
    archive = Path(root) if root is not None else start.absolute().parent
    scenes: list[StacScene] = []
    seen: set[str] = set()
    pending = [start.absolute()]
    while pending:
        file = pending.pop()
        real = os.path.realpath(file)
        if real in seen:
            continue
        seen.add(real)
        if len(seen) > MAX_STAC_FILES:
            raise ConfigError(f"the STAC catalog {str(start)!r} reaches more than {MAX_STAC_FILES} files")
        doc = _load_json(file)
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{str(file)!r} is not a STAC object (a JSON object with a type)")
        kind = doc.get("type")
        if kind == "Feature":
            scenes.append(_scene(doc, file, asset, archive, allow_outside))
        elif kind == "FeatureCollection":
            features = doc.get("features")
            for feature in features if isinstance(features, list) else []:
                if isinstance(feature, Mapping):
                    scenes.append(_scene(feature, file, asset, archive, allow_outside))
        elif kind in _CONTAINERS:
            links = doc.get("links")
            children = []
            for link in links if isinstance(links, list) else []:
                href = _text(link.get("href")) if isinstance(link, Mapping) else None
                if href is None or link.get("rel") not in ("child", "item"):
                    continue
                target = _local(href, file.parent)
                if target is None:
                    log.warning("skipping remote STAC link %s in %s", href[:200], file)
                elif not allow_outside and not is_inside(target, archive):
                    scenes.append(StacScene(Path(href).stem or "link", target, str(file), None,
                                            _outside(href, archive, "STAC link")))
                else:
                    children.append(Path(target))
            pending.extend(reversed(children))  # depth-first, in document order
        else:
            raise ConfigError(
                f"{str(file)!r} has STAC type {str(kind)[:50]!r}; "
                "expected Catalog, Collection, Feature or FeatureCollection"
            )
    return scenes


def _scene(item: Mapping[str, Any], file: Path, asset: str | None, root: Path, allow_outside: bool) -> StacScene:
    item_id = str(item.get("id") or "")[:200]
    href, error = _pick_asset(item, asset)
    local = _local(href, file.parent) if href else None
    if href and local is None:
        error = (f"asset {href[:200]!r} of STAC item {item_id!r} is not a local file (a URL, or malformed); "
                 "geoseg batch reads local files only (download it first)")
    elif local is not None and not allow_outside and not is_inside(local, root):
        error = _outside(href or local, root, f"asset of STAC item {item_id!r}")
    when = _when(item.get("properties"))
    return StacScene(item_id, local or href or f"{file}#{item_id}", str(file), when, error)
