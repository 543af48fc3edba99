"""Reading polygon layers for evaluation: explicit reprojection, repair, and counts of what changed.

Every layer is read with pyogrio, must have a CRS, and is reprojected
explicitly to the target CRS.  Invalid geometries are repaired with
``make_valid`` (keeping their polygonal part); empty and non-polygon features
are dropped.  Each of these is counted, so the report can say what happened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .rasters import check_input_path

__all__ = [
    "VECTOR_SUFFIXES",
    "PolygonLayer",
    "crs_label",
    "is_vector_path",
    "list_polygon_layers",
    "read_polygon_layer",
]

#: File suffixes read as vector layers (anything else must be a GeoTIFF).
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".fgb", ".shp")


def is_vector_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def crs_label(crs: Any) -> str:
    """``EPSG:xxxx`` where the CRS has an EPSG code, else its name."""
    from pyproj import CRS

    crs = CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


@dataclass
class PolygonLayer:
    """Polygonal features of one layer, in the target CRS, with counts of repairs."""

    frame: Any  # geopandas.GeoDataFrame
    source_crs: str
    repaired: int = 0
    dropped_empty: int = 0
    dropped_not_polygon: int = 0
    notes: list[str] = field(default_factory=list)


def _check_vector_path(path: str | os.PathLike[str], what: str) -> Path:
    p = check_input_path(path, what)
    if not is_vector_path(p):
        raise InputError(f"{what} {str(p)!r} is not a vector file; give one of {', '.join(VECTOR_SUFFIXES)}")
    return p


def list_polygon_layers(path: str | os.PathLike[str], what: str = "vector file") -> list[str]:
    """Names of the layers of ``path`` that hold geometries."""
    import pyogrio
    from pyogrio.errors import DataSourceError

    p = _check_vector_path(path, what)
    try:
        layers = pyogrio.list_layers(p)
    except DataSourceError as exc:
        raise InputError(f"{what} {str(p)!r} is not a readable vector file ({str(exc).splitlines()[0]})") from None
    return [str(name) for name, geom_type in layers if geom_type is not None]


def _polygonal(geom: Any) -> Any:
    """The polygonal part of ``geom`` (Polygon or MultiPolygon), or None."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    nested = [g for g in shapely.get_parts(geom) if isinstance(g, MultiPolygon)]
    for mp in nested:
        parts.extend(mp.geoms)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def read_polygon_layer(
    path: str | os.PathLike[str], *, target_crs: Any, layer: str | None = None, what: str = "vector file"
) -> PolygonLayer:
    """Read one layer (the only one if ``layer`` is None), reprojected to ``target_crs`` and repaired."""
    import geopandas as gpd
    import shapely
    from pyogrio import errors
    from pyproj import CRS

    read_errors = (
        errors.DataSourceError,
        errors.DataLayerError,
        errors.FeatureError,
        errors.FieldError,
        errors.GeometryError,
        errors.CRSError,
    )
    p = _check_vector_path(path, what)
    try:
        frame = gpd.read_file(p, layer=layer, engine="pyogrio")
    except read_errors as exc:
        where = f" layer {layer!r}" if layer else ""
        raise InputError(f"{what} {str(p)!r}{where} could not be read ({str(exc).splitlines()[0]})") from None
    if frame.crs is None:
        raise InputError(f"{what} {str(p)!r} has no CRS; assign one first (ogr2ogr -a_srs EPSG:XXXX out.gpkg {p.name})")
    source = crs_label(frame.crs)
    target = CRS.from_user_input(target_crs)
    out = PolygonLayer(frame=frame, source_crs=source)
    geoms = frame.geometry
    empty = geoms.isna() | geoms.is_empty
    out.dropped_empty = int(empty.sum())
    frame = frame.loc[~empty]
    if not CRS.from_user_input(frame.crs).equals(target, ignore_axis_order=True):
        frame = frame.to_crs(target)
        out.notes.append(f"{what} {p.name} reprojected from {source} to {crs_label(target)}")
    frame = frame.copy()
    # Validity is checked after reprojection, which can itself make a ring self-intersect.
    invalid = ~frame.geometry.is_valid
    out.repaired = int(invalid.sum())
    if out.repaired:
        frame.loc[invalid, frame.geometry.name] = shapely.make_valid(frame.geometry[invalid].values)
    polygonal = [_polygonal(g) for g in frame.geometry]
    keep = [g is not None for g in polygonal]
    out.dropped_not_polygon = len(keep) - sum(keep)
    frame = frame.set_geometry(gpd.GeoSeries(polygonal, index=frame.index, crs=frame.crs)).loc[keep]
    if out.repaired:
        out.notes.append(f"{what} {p.name}: {out.repaired} invalid geometries repaired with make_valid")
    if out.dropped_empty:
        out.notes.append(f"{what} {p.name}: {out.dropped_empty} empty geometries dropped")
    if out.dropped_not_polygon:
        out.notes.append(
            f"{what} {p.name}: {out.dropped_not_polygon} features without polygons (points, lines) dropped"
        )
    out.frame = frame
    return out
