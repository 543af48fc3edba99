"""Reading polygon layers: the one loader for training labels, evaluation truth and predicted polygons.

Every layer is read with pyogrio, must have a CRS (unless it has no
features), and is reprojected explicitly to the target CRS.  Then one repair
policy, whoever reads: features without geometry are dropped; invalid
geometries (checked after reprojection, which can itself make a ring cross
itself) are repaired with ``shapely.make_valid(method="structure",
keep_collapsed=False)`` (:data:`MAKE_VALID`); only the polygonal part of
each feature is kept, and features with none (points, lines, rings that
collapse to nothing) are dropped.  The "structure" method rebuilds a
polygon from its rings as the OGC model means them: the shell's area minus
its holes, with self-crossing shells split into their lobes, so a hole drawn
partly outside its shell never adds area.  (The "linework" method would keep
every face the lines enclose, turning such a hole into extra area.)  Each
step is counted, so training and evaluation reports say what happened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GeoSegError, InputError
from ..safety.gdal import check_vector_format
from .rasters import check_input_path

__all__ = [
    "MAKE_VALID",
    "VECTOR_SUFFIXES",
    "PolygonLayer",
    "crs_label",
    "is_vector_path",
    "list_polygon_layers",
    "read_polygon_layer",
    "repair_polygons",
]

#: File suffixes read as vector layers (anything else must be a GeoTIFF).
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".fgb", ".shp")
#: Keyword arguments of ``shapely.make_valid`` for every repaired input geometry (see the module docstring).
MAKE_VALID: dict[str, Any] = {"method": "structure", "keep_collapsed": False}


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
    source_crs: str | None
    reprojected: bool = False
    repaired: int = 0
    dropped_empty: int = 0
    dropped_not_polygon: int = 0
    notes: list[str] = field(default_factory=list)


def _check_vector_path(path: str | os.PathLike[str], what: str) -> Path:
    p = check_input_path(path, what)
    if not is_vector_path(p):
        raise InputError(f"{what} {str(p)!r} is not a vector file; give one of {', '.join(VECTOR_SUFFIXES)}")
    check_vector_format(p, what)  # the bytes are what the suffix says: no OGR VRT reading other files
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
    """The non-empty polygonal part of ``geom`` (Polygon or MultiPolygon), or None."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    if isinstance(geom, (Polygon, MultiPolygon)):
        return None if geom.is_empty else geom
    parts: list[Any] = []
    for g in shapely.get_parts(geom):
        if isinstance(g, Polygon):
            parts.append(g)
        elif isinstance(g, MultiPolygon):
            parts.extend(g.geoms)
    parts = [g for g in parts if not g.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def repair_polygons(geoms: Any) -> tuple[Any, int]:
    """``geoms`` (an array of shapely geometries) with the invalid ones repaired by the policy; and how many were."""
    import numpy as np
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid], **MAKE_VALID)
    return geoms, int(invalid.sum())


def read_polygon_layer(
    path: str | os.PathLike[str],
    *,
    target_crs: Any,
    layer: str | None = None,
    what: str = "vector file",
    error: type[GeoSegError] = InputError,
) -> PolygonLayer:
    """Read one layer (the first if ``layer`` is None), reprojected to ``target_crs`` and repaired by the policy.

    ``what`` names the file in messages and notes; a file that cannot be
    read, or has features but no CRS, raises ``error``.
    """
    import geopandas as gpd
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
    try:
        p = _check_vector_path(path, what)
    except InputError as exc:
        raise (exc if error is InputError else error(str(exc))) from None
    try:
        frame = gpd.read_file(p, layer=layer, engine="pyogrio")
    except read_errors as exc:
        where = f" layer {layer!r}" if layer else ""
        raise error(f"{what} {str(p)!r}{where} could not be read ({str(exc).splitlines()[0]})") from None
    if frame.crs is None and len(frame):
        raise error(f"{what} {str(p)!r} has no CRS; assign one first (ogr2ogr -a_srs EPSG:XXXX out.gpkg {p.name})")
    source = crs_label(frame.crs) if frame.crs is not None else None
    target = CRS.from_user_input(target_crs)
    out = PolygonLayer(frame=frame, source_crs=source)
    geoms = frame.geometry
    empty = geoms.isna() | geoms.is_empty
    out.dropped_empty = int(empty.sum())
    frame = frame.loc[~empty]
    if frame.crs is not None and not CRS.from_user_input(frame.crs).equals(target, ignore_axis_order=True):
        frame = frame.to_crs(target)
        out.reprojected = True
        out.notes.append(f"{what} {p.name} reprojected from {source} to {crs_label(target)}")
    frame = frame.copy()
    # Validity is checked after reprojection, which can itself make a ring self-intersect.
    repaired, out.repaired = repair_polygons(frame.geometry.to_numpy())
    polygonal = [_polygonal(g) for g in repaired]
    keep = [g is not None for g in polygonal]
    out.dropped_not_polygon = len(keep) - sum(keep)
    frame = frame.set_geometry(gpd.GeoSeries(polygonal, index=frame.index, crs=frame.crs)).loc[keep]
    if out.repaired:
        out.notes.append(f"{what} {p.name}: {out.repaired} invalid geometries repaired with make_valid")
    if out.dropped_empty:
        out.notes.append(f"{what} {p.name}: {out.dropped_empty} empty geometries dropped")
    if out.dropped_not_polygon:
        out.notes.append(
            f"{what} {p.name}: {out.dropped_not_polygon} features without polygons (points, lines, rings that "
            f"collapse to nothing) dropped"
        )
    out.frame = frame
    return out
