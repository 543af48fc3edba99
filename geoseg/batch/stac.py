"""STAC: an Item (1.0.0) describing each scene's outputs, and reading a local STAC catalog as input.

The item's geometry and bbox are the scene footprint in EPSG:4326 (edges
densified, so a projected rectangle keeps its true shape); assets point to
the outputs with hrefs relative to the item, with media types, roles, sizes
and sha256 multihashes.  The acquisition time comes from the input STAC item,
else the TIFF ``DateTime`` tag (read as UTC), else it is unknown: then
``datetime`` is null and the interval runs from 1970-01-01 to the input
file's modification time (the image cannot be younger than its file).
Nothing in an item depends on when or where it was written, so a rerun
writes the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import ConfigError

__all__ = ["STAC_VERSION", "Asset", "StacScene", "read_stac_catalog", "scene_item", "stac_datetime"]

log = logging.getLogger(__name__)

STAC_VERSION = "1.0.0"
PROJECTION_EXT = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
CLASSIFICATION_EXT = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
GPKG_TYPE = "application/geopackage+sqlite3"
_EDGE_POINTS = 16
_EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class Asset:
    """An output file of a scene as a STAC asset."""

    href: str
    type: str
    title: str
    roles: tuple[str, ...]
    sha256: str
    size: int
    extra: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"href": self.href, "type": self.type, "title": self.title, "roles": list(self.roles),
               "file:checksum": "1220" + self.sha256, "file:size": self.size}
        out.update(self.extra or {})
        return out


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stac_datetime(tags: Mapping[str, str], mtime_ns: int) -> dict[str, Any]:
    """STAC datetime properties from a GeoTIFF's tags (``TIFFTAG_DATETIME``), or the unknown-time interval."""
    text = tags.get("TIFFTAG_DATETIME", "").strip()
    try:
        when = datetime.strptime(text, "%Y:%m:%d %H:%M:%S").replace(tzinfo=timezone.utc)
        return {"datetime": _iso(when)}
    except ValueError:
        end = datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc)
        return {"datetime": None, "start_datetime": _EPOCH, "end_datetime": _iso(end)}


def footprint(crs_wkt: str, transform: Sequence[float], width: int, height: int) -> dict[str, Any]:
    """The scene outline as a GeoJSON polygon in EPSG:4326, each edge densified."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_points

    a = Affine(*transform[:6])
    n = _EDGE_POINTS
    cols = [width * i / n for i in range(n)]
    rows = [height * i / n for i in range(n)]
    pixel_ring = (
        [(c, 0.0) for c in cols] + [(float(width), r) for r in rows]
        + [(width - c, float(height)) for c in cols] + [(0.0, height - r) for r in rows]
    )
    xs, ys = zip(*(a * p for p in pixel_ring))
    lons, lats = warp_points(CRS.from_user_input(crs_wkt), "EPSG:4326", list(xs), list(ys))
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def scene_item(
    *,
    scene_id: str,
    crs_wkt: str,
    transform: Sequence[float],
    width: int,
    height: int,
    when: Mapping[str, Any],
    assets: Mapping[str, Asset],
    properties: Mapping[str, Any],
    derived_from: str | None = None,
    classes: Sequence[Any] = (),
) -> dict[str, Any]:
    """A STAC 1.0.0 Item for one scene's outputs (hrefs in ``assets`` relative to the item)."""
    from rasterio.crs import CRS

    geometry = footprint(crs_wkt, transform, width, height)
    ring = geometry["coordinates"][0]
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]
    epsg = CRS.from_user_input(crs_wkt).to_epsg()
    props: dict[str, Any] = dict(when)
    props["proj:epsg"] = epsg
    if epsg is None:
        props["proj:wkt2"] = crs_wkt
    props["proj:shape"] = [height, width]
    props["proj:transform"] = [float(v) for v in transform[:6]]
    props.update(properties)
    links = [{"rel": "derived_from", "href": derived_from}] if derived_from else []
    item_assets = {k: v.to_dict() for k, v in assets.items()}
    if classes and "landcover" in item_assets:
        item_assets["landcover"]["classification:classes"] = [
            {"value": c.id, "name": c.name, "color_hint": "{:02X}{:02X}{:02X}".format(*c.color)} for c in classes
        ]
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROJECTION_EXT, FILE_EXT] + ([CLASSIFICATION_EXT] if classes else []),
        "id": scene_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": links,
        "assets": item_assets,
    }


def item_bytes(item: Mapping[str, Any]) -> bytes:
    return (json.dumps(item, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# -- reading a STAC catalog as input -----------------------------------------------------------


@dataclass(frozen=True)
class StacScene:
    """A GeoTIFF asset of an input STAC item."""

    item_id: str
    href: str  # absolute local path, or the original href if it is not local
    item_href: str
    when: Mapping[str, Any] | None
    error: str | None = None


def _local(href: str, base: Path) -> str | None:
    """An href as an absolute local path, or ``None`` if it is remote."""
    parsed = urlparse(href)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(href)
        return str(path if path.is_absolute() else (base / path).resolve())
    return None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read STAC file {str(path)!r}: {exc}") from None


def _is_geotiff(asset: Mapping[str, Any]) -> bool:
    media = str(asset.get("type", "")).lower()
    href = str(asset.get("href", "")).lower()
    return "geotiff" in media or "image/tiff" in media or href.endswith((".tif", ".tiff"))


def _pick_asset(item: Mapping[str, Any], key: str | None) -> tuple[str | None, str | None]:
    """``(href, error)`` of the asset to read from an item."""
    assets = item.get("assets") or {}
    if key is not None:
        if key not in assets:
            return None, f"STAC item {item.get('id')!r} has no asset {key!r} (assets: {', '.join(assets) or 'none'})"
        return assets[key].get("href"), None
    tiffs = [(k, a) for k, a in assets.items() if isinstance(a, Mapping) and _is_geotiff(a)]
    if not tiffs:
        return None, f"STAC item {item.get('id')!r} has no GeoTIFF asset; name one with input.asset"
    tiffs.sort(key=lambda ka: "data" not in (ka[1].get("roles") or []))
    return tiffs[0][1].get("href"), None


def _when(props: Mapping[str, Any]) -> dict[str, Any] | None:
    if props.get("datetime"):
        return {"datetime": props["datetime"]}
    if props.get("start_datetime") and props.get("end_datetime"):
        return {"datetime": None, "start_datetime": props["start_datetime"], "end_datetime": props["end_datetime"]}
    return None


def read_stac_catalog(path: str | os.PathLike[str], *, asset: str | None = None) -> list[StacScene]:
    """The GeoTIFF assets of every item reachable from a local catalog, collection, item or item collection.

    Follows ``child`` and ``item`` links that are local files; remote links are
    skipped with a warning, remote assets become scenes that fail with a clear reason.
    """
    scenes: list[StacScene] = []
    seen: set[Path] = set()

    def visit(file: Path) -> Iterator[tuple[Mapping[str, Any], Path]]:
        file = file.resolve()
        if file in seen:
            return
        seen.add(file)
        doc = _load_json(file)
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{str(file)!r} is not a STAC object")
        kind = doc.get("type")
        if kind == "Feature":
            yield doc, file
        elif kind == "FeatureCollection":
            for feature in doc.get("features") or []:
                yield feature, file
        elif kind in ("Catalog", "Collection"):
            for link in doc.get("links") or []:
                if link.get("rel") not in ("child", "item") or not link.get("href"):
                    continue
                target = _local(link["href"], file.parent)
                if target is None:
                    log.warning("skipping remote STAC link %s in %s", link["href"], file)
                    continue
                yield from visit(Path(target))
        else:
            raise ConfigError(
                f"{str(file)!r} has STAC type {kind!r}; expected Catalog, Collection, Feature or FeatureCollection"
            )

    for item, file in visit(Path(path)):
        item_id = str(item.get("id") or "")
        href, error = _pick_asset(item, asset)
        local = _local(href, file.parent) if href else None
        if href and local is None:
            error = (f"asset {href!r} of STAC item {item_id!r} is remote; "
                     "geoseg batch reads local files only (download it first)")
        when = _when(item.get("properties") or {})
        scenes.append(StacScene(item_id, local or href or f"{file}#{item_id}", str(file), when, error))
    return scenes
