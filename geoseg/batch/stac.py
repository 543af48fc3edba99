"""STAC: an Item per scene, a Collection for the archive, and reading a local STAC catalog as input.

Items and the collection are STAC 1.1.0, built with pystac, and declare the
extensions they use at the versions pystac writes: projection v2.0.0
(``proj:code``, or ``proj:wkt2`` for a CRS without an authority code, with
``proj:shape`` and ``proj:transform``), raster v1.1.0 (``raster:bands`` of each
COG, read from the file with rio-stac: data type, nodata, scale and offset,
statistics), file v2.1.0 (``file:checksum`` as a sha2-256 multihash and
``file:size``) and classification v2.0.0 (the class table on the land-cover
asset).

The item's geometry and bbox are the scene footprint in EPSG:4326 (edges
densified, so a projected rectangle keeps its true shape); assets point to
the outputs with hrefs relative to the item.  The acquisition time comes from
the input STAC item, else the TIFF ``DateTime`` tag (read as UTC), else it is
unknown: then ``datetime`` is null and the interval runs from 1970-01-01 to
the input file's modification time (the image cannot be younger than its file).

The collection (``collection.json`` in the output root) links every finished
scene's item (``item``), itself (``self``, ``root``), and each item links back
(``root``, ``parent``, ``collection``), all relative but ``self``.  Nothing in
an item depends on when it was written, so a rerun writes the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .stac_input import StacScene, read_stac_catalog  # reading a catalog as input lives there

__all__ = [
    "STAC_VERSION",
    "COLLECTION",
    "Asset",
    "StacScene",
    "collection_bytes",
    "collection_id_for",
    "read_stac_catalog",
    "scene_item",
    "stac_datetime",
    "write_collection",
]

log = logging.getLogger(__name__)

STAC_VERSION = "1.1.0"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
GPKG_TYPE = "application/geopackage+sqlite3"
#: A QGIS layer style (``.qml``) beside a raster.
QML_TYPE = "application/xml"
#: The archive's collection, in the output root.
COLLECTION = "collection.json"
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
    xs, ys = zip(*(a * p for p in pixel_ring), strict=True)
    lons, lats = warp_points(CRS.from_user_input(crs_wkt), "EPSG:4326", list(xs), list(ys))
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats, strict=True)]
    ring.append(ring[0])
    # RFC 7946: the outer ring runs counter-clockwise (a north-up raster's ring, as built, runs clockwise).
    if _signed_area(ring) < 0:
        ring.reverse()
    return {"type": "Polygon", "coordinates": [ring]}


def _signed_area(ring: Sequence[Sequence[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False)) / 2


def collection_id_for(root: str | os.PathLike[str]) -> str:
    """The id of the archive's collection: the output folder's name, made safe."""
    from .layout import safe_name

    return safe_name(Path(root).resolve().name or "geoseg")


def _parse_when(when: Mapping[str, Any]) -> tuple[datetime | None, datetime | None, datetime | None]:
    from pystac.utils import str_to_datetime

    def parse(key: str) -> datetime | None:
        value = when.get(key)
        return str_to_datetime(value) if value else None

    return parse("datetime"), parse("start_datetime"), parse("end_datetime")


def _stac_name(name: str) -> str:
    """A class name as the classification extension allows it (``[0-9A-Za-z-_]+``)."""
    import re

    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_") or "class"


def raster_bands(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``raster:bands`` of a raster file, read with rio-stac (statistics and histogram at most 1024 px wide)."""
    import rasterio
    from rio_stac.stac import get_raster_info

    with rasterio.open(path) as ds:
        bands = get_raster_info(ds, max_size=1024)
    for band in bands:
        for key in ("scale", "offset"):  # the defaults (1 and 0) say nothing
            if band.get(key) == (1.0 if key == "scale" else 0.0):
                band.pop(key)
    return bands


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
    folder: str | os.PathLike[str] | None = None,
    collection_id: str | None = None,
) -> dict[str, Any]:
    """A STAC 1.1.0 Item for one scene's outputs (hrefs in ``assets`` relative to the item).

    With ``folder`` (where the item and its assets lie), COG assets get
    ``raster:bands`` read from the files; with ``collection_id`` the item
    links to the archive's collection in the folder above.
    """
    import pystac
    from pystac.extensions.classification import Classification, ClassificationExtension
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterBand, RasterExtension
    from rasterio.crs import CRS

    geometry = footprint(crs_wkt, transform, width, height)
    ring = geometry["coordinates"][0]
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]
    moment, start, end = _parse_when(when)
    item = pystac.Item(scene_id, geometry, bbox, moment, dict(properties), start_datetime=start,
                       end_datetime=end, collection=collection_id)

    proj = ProjectionExtension.ext(item, add_if_missing=True)
    crs = CRS.from_user_input(crs_wkt)
    authority = crs.to_authority()
    if authority is not None:
        proj.code = f"{authority[0]}:{authority[1]}"
    else:
        proj.code = None
        proj.wkt2 = crs_wkt
    proj.shape = [height, width]
    proj.transform = [float(v) for v in transform[:6]]

    for key, spec in assets.items():
        asset = pystac.Asset(spec.href, title=spec.title, media_type=spec.type, roles=list(spec.roles))
        item.add_asset(key, asset)
        file = FileExtension.ext(asset, add_if_missing=True)
        file.checksum = "1220" + spec.sha256
        file.size = spec.size
        asset.extra_fields.update(spec.extra or {})
        if folder is not None and spec.type == COG_TYPE:
            RasterExtension.ext(asset, add_if_missing=True).bands = [
                RasterBand(b) for b in raster_bands(Path(folder) / spec.href)
            ]
        if key == "landcover" and classes:
            table = [
                Classification.create(value=c.id, name=_stac_name(c.name), title=c.name,
                                      color_hint="{:02X}{:02X}{:02X}".format(*c.color))
                for c in classes
            ]
            table.append(Classification.create(value=255, name="nodata", title="no data", nodata=True))
            ClassificationExtension.ext(asset, add_if_missing=True).classes = table

    if derived_from:
        item.add_link(pystac.Link("derived_from", derived_from))
    if collection_id is not None:
        for rel in ("collection", "parent", "root"):
            item.add_link(pystac.Link(rel, f"../{COLLECTION}", media_type=pystac.MediaType.JSON))
    out = item.to_dict(include_self_link=False, transform_hrefs=False)
    out["stac_extensions"] = sorted(out.get("stac_extensions", []))
    return out


def item_bytes(item: Mapping[str, Any]) -> bytes:
    return (json.dumps(item, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# -- the archive's collection ------------------------------------------------------------------


def _extent(items: Sequence[Mapping[str, Any]]) -> Any:
    import pystac
    from pystac.utils import str_to_datetime

    boxes = [i["bbox"] for i in items if i.get("bbox")]
    bbox = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
            if boxes else [-180.0, -90.0, 180.0, 90.0])
    starts, ends = [], []
    for i in items:
        props = i.get("properties") or {}
        first = props.get("datetime") or props.get("start_datetime")
        last = props.get("datetime") or props.get("end_datetime")
        if first:
            starts.append(str_to_datetime(first))
        if last:
            ends.append(str_to_datetime(last))
    interval = [min(starts) if starts else None, max(ends) if ends else None]
    return pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([interval]))


def collection_dict(root: str | os.PathLike[str], item_paths: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """The archive's STAC Collection linking the items at ``item_paths`` (files under ``root``)."""
    import pystac

    root = Path(root).resolve()
    paths = sorted({Path(p).resolve() for p in item_paths})
    items = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    cid = collection_id_for(root)
    collection = pystac.Collection(
        cid, f"Land-cover maps and polygons made by geoseg from the scenes of {root.name}.", _extent(items),
        title=f"geoseg outputs: {root.name}", license="other",
    )
    out = collection.to_dict(include_self_link=False, transform_hrefs=False)
    # The links, as written: pystac would add its own root link with an absolute href.
    out["links"] = [
        {"rel": "self", "href": (root / COLLECTION).as_uri(), "type": pystac.MediaType.JSON},
        {"rel": "root", "href": f"./{COLLECTION}", "type": pystac.MediaType.JSON},
    ] + [
        {"rel": "item", "href": "./" + path.relative_to(root).as_posix(), "type": pystac.MediaType.GEOJSON,
         "title": item.get("id")}
        for path, item in zip(paths, items, strict=True)
    ]
    return out


def collection_bytes(root: str | os.PathLike[str], item_paths: Iterable[str | os.PathLike[str]]) -> bytes:
    return item_bytes(collection_dict(root, item_paths))


def write_collection(root: str | os.PathLike[str], item_paths: Iterable[str | os.PathLike[str]]) -> Path:
    """Write ``collection.json`` in ``root`` atomically; left untouched when its bytes would not change."""
    from ..atomic import atomic_path

    path = Path(root) / COLLECTION
    data = collection_bytes(root, item_paths)
    if path.is_file() and path.read_bytes() == data:
        return path
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_bytes(data)
    return path

