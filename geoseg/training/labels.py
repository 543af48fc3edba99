"""Training labels on the image grid: class rasters checked, vector labels rasterised.

A label raster used for training holds one label id per image pixel: a class
id, the ignore id (unlabelled), or :data:`~geoseg.classes.NODATA` (no label,
e.g. outside the image).  Raster labels must already be on the image grid.
Vector labels (GeoPackage, GeoJSON, ...) are reprojected to the image CRS
explicitly, repaired with ``make_valid``, and burnt onto the image grid; the
features that fall outside the image are counted and reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..classes import NODATA
from ..errors import InputError, LabelError
from ..io.rasters import SceneInfo, open_raster
from ..tiling import PixelWindow

__all__ = ["RASTER_LABEL_SUFFIXES", "LabelReport", "PreparedLabels", "prepare_labels", "read_label_window"]

log = logging.getLogger(__name__)

#: Label files with these suffixes are read as class rasters; anything else as a vector file.
RASTER_LABEL_SUFFIXES = (".tif", ".tiff")
_VERSION = 1


@dataclass(frozen=True)
class LabelReport:
    """What happened to one scene's labels."""

    image: str
    labels: str
    kind: str  # "raster" or "vector"
    features: int = 0
    dropped_outside: int = 0
    clipped_at_edge: int = 0
    repaired_invalid: int = 0
    dropped_empty: int = 0
    reprojected_from: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PreparedLabels:
    """A label raster on the image grid, ready to read with :func:`read_label_window`."""

    path: str
    report: LabelReport


def _fingerprint(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def prepare_labels(
    scene: SceneInfo,
    labels: str | os.PathLike[str],
    *,
    class_ids: Sequence[int],
    ignore_id: int | None,
    class_column: str = "class_id",
    layer: str | None = None,
    fill: int | None = None,
    cache_dir: str | os.PathLike[str],
) -> PreparedLabels:
    """Check raster labels, or rasterise vector labels into ``cache_dir`` (reused when inputs are unchanged)."""
    path = Path(labels)
    if not path.exists():
        raise LabelError(f"labels {str(path)!r} for {Path(scene.path).name} do not exist; check the path in the config")
    if path.suffix.lower() in RASTER_LABEL_SUFFIXES:
        return PreparedLabels(str(path.resolve()), _check_label_raster(scene, path, class_ids))
    return _rasterise_vector(scene, path, class_ids=class_ids, ignore_id=ignore_id, class_column=class_column,
                             layer=layer, fill=fill, cache_dir=Path(cache_dir))


def _check_label_raster(scene: SceneInfo, path: Path, class_ids: Sequence[int]) -> LabelReport:
    try:
        ds = open_raster(path)
    except InputError as exc:
        raise LabelError(f"labels: {exc}") from None
    with ds:
        if ds.count != 1:
            raise LabelError(f"label raster {str(path)!r} has {ds.count} bands; it must have one band of class ids")
        if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
            raise LabelError(f"label raster {str(path)!r} is {ds.dtypes[0]}; class ids must be an integer raster")
        same_grid = (
            (ds.width, ds.height) == (scene.width, scene.height)
            and ds.crs is not None
            and ds.crs == scene.crs
            and np.allclose(tuple(ds.transform)[:6], scene.transform, rtol=0, atol=1e-6 * max(1.0, abs(scene.transform[0])))
        )
        if not same_grid:
            raise LabelError(
                f"label raster {str(path)!r} is not on the grid of {scene.path!r}: labels {ds.width}x{ds.height} px, "
                f"CRS {ds.crs.to_string() if ds.crs else None}, transform {tuple(ds.transform)[:6]}; image {scene.width}x"
                f"{scene.height} px, CRS {scene.crs.to_string()}, transform {scene.transform}. Warp the labels onto the "
                "image grid (gdalwarp -te/-tr/-t_srs of the image, -r near) or give vector labels"
            )
        if ds.nodata is not None and int(ds.nodata) in set(class_ids):
            raise LabelError(
                f"label raster {str(path)!r} declares nodata {ds.nodata}, which is also a class id; "
                f"remove the nodata value (gdal_edit.py -unsetnodata) or use {NODATA} for 'no label'"
            )
    return LabelReport(image=scene.path, labels=str(path.resolve()), kind="raster")


def read_label_window(path: str, window: PixelWindow, *, dataset=None) -> np.ndarray:
    """Label ids of ``window`` as int64 ``(h, w)``; outside the raster and its nodata read as NODATA."""
    from rasterio.windows import Window

    if dataset is None:
        with open_raster(path) as ds:
            return read_label_window(path, window, dataset=ds)
    ds = dataset
    out = np.full((window.height, window.width), NODATA, dtype=np.int64)
    r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
    r1, c1 = min(window.row_end, ds.height), min(window.col_end, ds.width)
    if r1 <= r0 or c1 <= c0:
        return out
    try:
        data = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    except Exception as exc:  # noqa: BLE001 - GDAL raises several error types for corrupt data
        raise LabelError(f"{path!r}: reading labels rows {r0}:{r1}, cols {c0}:{c1} failed ({exc}); the file may be corrupt") from None
    data = data.astype(np.int64)
    if ds.nodata is not None:
        data[data == int(ds.nodata)] = NODATA
    out[r0 - window.row_off : r1 - window.row_off, c0 - window.col_off : c1 - window.col_off] = data
    return out


def _burn(dst, scene: SceneInfo, geoms: np.ndarray, values: np.ndarray, *, fill: int, rows: int = 1024) -> None:
    """Burn shapes band by band of rows, so memory stays bounded on large scenes."""
    import shapely
    from rasterio.features import rasterize
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    tree = shapely.STRtree(geoms)
    for r0 in range(0, scene.height, rows):
        h = min(rows, scene.height - r0)
        window = Window(0, r0, scene.width, h)
        wt = window_transform(window, scene.affine)
        band = shapely.box(wt.c, wt.f + wt.e * h, wt.c + wt.a * scene.width, wt.f)
        hits = np.sort(tree.query(band))  # keep the burn order (largest first)
        if len(hits):
            shapes = [(g, int(v)) for g, v in zip(geoms[hits], values[hits])]
            data = rasterize(shapes, out_shape=(h, scene.width), transform=wt, fill=fill, dtype="uint8")
        else:
            data = np.full((h, scene.width), fill, np.uint8)
        dst.write(data, 1, window=window)


def _read_vector(path: Path, layer: str | None):
    import geopandas as gpd

    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - pyogrio raises its own DataSourceError/DataLayerError types
        raise LabelError(f"cannot read vector labels {str(path)!r}{f' layer {layer!r}' if layer else ''}: {exc}") from None


def _class_values(frame, column: str, path: Path) -> np.ndarray:
    import pandas as pd

    if column not in frame.columns:
        cols = [c for c in frame.columns if c != frame.geometry.name]
        raise LabelError(f"vector labels {str(path)!r} have no column {column!r}; columns: {cols}. Set class_column in the config")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        examples = frame.loc[bad, column].head(3).tolist()
        raise LabelError(f"vector labels {str(path)!r}: column {column!r} must hold integer class ids; found {examples}")
    return values.to_numpy().astype(np.int64)


def _rasterise_vector(
    scene: SceneInfo,
    path: Path,
    *,
    class_ids: Sequence[int],
    ignore_id: int | None,
    class_column: str,
    layer: str | None,
    fill: int | None,
    cache_dir: Path,
) -> PreparedLabels:
    import rasterio
    import shapely

    if fill is None:
        if ignore_id is None:
            raise LabelError(
                f"vector labels {str(path)!r}: say what pixels without a polygon are: set 'fill' for the scene "
                "(e.g. the background class id) or 'ignore_id' (unlabelled, ignored in training)"
            )
        fill = ignore_id
    key = hashlib.sha256(json.dumps({
        "image": _fingerprint(Path(scene.path)), "labels": _fingerprint(path), "column": class_column, "layer": layer,
        "fill": fill, "classes": list(class_ids), "ignore": ignore_id, "version": _VERSION,
    }, sort_keys=True).encode()).hexdigest()[:16]
    out = cache_dir / f"labels-{Path(scene.path).stem}-{key}.tif"
    report_path = out.with_suffix(".json")
    if out.exists() and report_path.exists():
        log.info("reusing rasterised labels %s", out)
        return PreparedLabels(str(out), LabelReport(**json.loads(report_path.read_text())))

    frame = _read_vector(path, layer)
    if frame.crs is None and len(frame):
        raise LabelError(f"vector labels {str(path)!r} have no CRS; assign one (ogr2ogr -a_srs EPSG:XXXX) so they can be placed on the image")
    values = _class_values(frame, class_column, path)
    allowed = set(class_ids) | ({ignore_id} if ignore_id is not None else set())
    unknown = sorted(set(values.tolist()) - allowed)
    if unknown:
        raise LabelError(
            f"vector labels {str(path)!r} hold class ids {unknown} that are not in the class scheme "
            f"(class ids {list(class_ids)}, ignore id {ignore_id}); add them to 'classes' or fix the labels"
        )
    source_crs = frame.crs.to_string() if frame.crs is not None else None
    reprojected = None
    if len(frame) and frame.crs != scene.crs:
        frame = frame.to_crs(scene.crs)  # explicit: labels are placed on the image in its own CRS
        reprojected = source_crs
    geoms = frame.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    dropped_empty = int((~present).sum())
    invalid = present & ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms = geoms.copy()
        # "structure" keeps polygons polygonal (no stray lines or points from collapsed rings)
        geoms[invalid] = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        log.warning("%s: repaired %d invalid polygon(s) with make_valid", path.name, repaired)
    left, top = scene.transform[2], scene.transform[5]
    right, bottom = left + scene.transform[0] * scene.width, top + scene.transform[4] * scene.height
    footprint = shapely.box(left, bottom, right, top)
    inside = present & shapely.intersects(geoms, footprint)
    dropped = int((present & ~inside).sum())
    clipped = int((inside & ~shapely.within(geoms, footprint)).sum())
    n_inside = int(inside.sum())
    if present.sum() and not n_inside:
        lb = shapely.total_bounds(geoms[present])
        raise LabelError(
            f"none of the {int(present.sum())} label features in {str(path)!r} overlap the image {scene.path!r} "
            f"(image bounds {[round(v, 2) for v in (left, bottom, right, top)]}, label bounds "
            f"{[round(float(v), 2) for v in lb]} in {scene.crs.to_string()}); check that labels and image cover the same place"
        )
    if dropped:
        log.warning("%s: %d of %d label feature(s) lie outside the image %s and were dropped",
                    path.name, dropped, int(present.sum()), Path(scene.path).name)
    if not n_inside:
        if fill == ignore_id:
            raise LabelError(f"vector labels {str(path)!r} are empty and unlabelled pixels are ignored: nothing to learn from")
        log.warning("%s: no label features; every pixel of %s gets class %d", path.name, Path(scene.path).name, fill)

    order = np.argsort(-shapely.area(geoms[inside]), kind="stable")  # small shapes are burnt last, on top
    shapes_geoms, shapes_values = geoms[inside][order], values[inside][order]
    cache_dir.mkdir(parents=True, exist_ok=True)
    report = LabelReport(
        image=scene.path, labels=str(path.resolve()), kind="vector", features=int(present.sum()), dropped_outside=dropped,
        clipped_at_edge=clipped, repaired_invalid=repaired, dropped_empty=dropped_empty, reprojected_from=reprojected,
    )
    with atomic_path(out, overwrite=True) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=scene.width, height=scene.height, count=1, dtype="uint8",
        crs=scene.crs, transform=scene.affine, nodata=NODATA, tiled=True, compress="deflate",
    ) as dst:
        _burn(dst, scene, shapes_geoms, shapes_values, fill=fill)
    with atomic_path(report_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(report.to_dict()))
    log.info("rasterised %d label feature(s) of %s onto %s", n_inside, path.name, Path(scene.path).name)
    return PreparedLabels(str(out), report)
