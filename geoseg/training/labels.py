"""Training labels on the image grid: class rasters checked, vector labels rasterised.

A label raster used for training holds one label id per image pixel: a class
id, the ignore id (unlabelled), or :data:`~geoseg.classes.NODATA` (no label,
e.g. outside the image).  Raster labels must already be on the image grid.
Vector labels (GeoPackage, GeoJSON, ...) are loaded by
:func:`geoseg.io.vectors.read_polygon_layer`, the loader evaluation reads truth
with (reprojected to the image CRS explicitly, repaired by its one
``make_valid`` policy), and burnt onto the image grid; the features that fall
outside the image are counted and reported.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..classes import NODATA
from ..errors import LabelError
from ..io.class_rasters import inspect_class_raster, read_class_window
from ..io.grid import same_grid
from ..io.rasters import SceneInfo
from ..io.vectors import read_polygon_layer
from ..tiling import PixelWindow
from .cache_keys import cache_key, file_fingerprint

__all__ = ["RASTER_LABEL_SUFFIXES", "LabelReport", "PreparedLabels", "prepare_labels", "read_label_window"]

log = logging.getLogger(__name__)

#: Label files with these suffixes are read as class rasters; anything else as a vector file.
RASTER_LABEL_SUFFIXES = (".tif", ".tiff")
_VERSION = 2  # 2: labels loaded by geoseg.io.vectors (features without polygons dropped)


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
    dropped_not_polygon: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PreparedLabels:
    """A label raster on the image grid, ready to read with :func:`read_label_window`."""

    path: str
    report: LabelReport


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
    labels = inspect_class_raster(path, what="label raster", error=LabelError)
    if not same_grid(labels, scene):
        raise LabelError(
            f"label raster {str(path)!r} is not on the grid of {scene.path!r}: labels {labels.width}x{labels.height} "
            f"px, CRS {labels.crs.to_string()}, transform {labels.transform}; image {scene.width}x"
            f"{scene.height} px, CRS {scene.crs.to_string()}, transform {scene.transform}. Warp the labels onto the "
            "image grid (gdalwarp -te/-tr/-t_srs of the image, -r near) or give vector labels"
        )
    if labels.nodata is not None and int(labels.nodata) in set(class_ids):
        raise LabelError(
            f"label raster {str(path)!r} declares nodata {labels.nodata}, which is also a class id; "
            f"remove the nodata value (gdal_edit.py -unsetnodata) or use {NODATA} for 'no label'"
        )
    return LabelReport(image=scene.path, labels=str(path.resolve()), kind="raster")


def read_label_window(path: str, window: PixelWindow, *, dataset=None) -> np.ndarray:
    """Label ids of ``window`` as int64 ``(h, w)``; NODATA outside the raster and where it is invalid (nodata)."""
    return read_class_window(path, window, dataset=dataset, dtype=np.int64, what="labels", error=LabelError)


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
            shapes = [(g, int(v)) for g, v in zip(geoms[hits], values[hits], strict=True)]
            data = rasterize(shapes, out_shape=(h, scene.width), transform=wt, fill=fill, dtype="uint8")
        else:
            data = np.full((h, scene.width), fill, np.uint8)
        dst.write(data, 1, window=window)


def _class_values(frame, column: str, path: Path) -> np.ndarray:
    import pandas as pd

    if column not in frame.columns:
        cols = [c for c in frame.columns if c != frame.geometry.name]
        raise LabelError(
            f"vector labels {str(path)!r} have no column {column!r}; columns: {cols}. Set class_column in the config"
        )
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        examples = frame.loc[bad, column].head(3).tolist()
        raise LabelError(
            f"vector labels {str(path)!r}: column {column!r} must hold integer class ids; found {examples}"
        )
    return values.to_numpy().astype(np.int64)


@dataclass(frozen=True)
class VectorLabels:
    """A scene's label polygons that touch its image (in its CRS), their class ids, and what was done to them."""

    geoms: np.ndarray
    values: np.ndarray
    report: LabelReport


def load_vector_labels(
    scene: SceneInfo,
    path: Path,
    *,
    class_ids: Sequence[int],
    ignore_id: int | None,
    class_column: str,
    layer: str | None,
) -> VectorLabels:
    """Read vector labels for ``scene``: the one loader and repair policy (evaluation reads truth with it too,
    see :mod:`geoseg.io.vectors`), class ids checked against the scheme, features off the image dropped."""
    import shapely

    loaded = read_polygon_layer(path, target_crs=scene.crs_wkt, layer=layer, what="vector labels", error=LabelError)
    for note in loaded.notes:
        log.warning("%s", note)
    frame = loaded.frame
    values = _class_values(frame, class_column, path)
    allowed = set(class_ids) | ({ignore_id} if ignore_id is not None else set())
    unknown = sorted(set(values.tolist()) - allowed)
    if unknown:
        raise LabelError(
            f"vector labels {str(path)!r} hold class ids {unknown} that are not in the class scheme "
            f"(class ids {list(class_ids)}, ignore id {ignore_id}); add them to 'classes' or fix the labels"
        )
    geoms = frame.geometry.to_numpy()
    left, top = scene.transform[2], scene.transform[5]
    right, bottom = left + scene.transform[0] * scene.width, top + scene.transform[4] * scene.height
    footprint = shapely.box(left, bottom, right, top)
    inside = shapely.intersects(geoms, footprint)
    dropped = int((~inside).sum())
    if len(geoms) and not inside.any():
        lb = shapely.total_bounds(geoms)
        raise LabelError(
            f"none of the {len(geoms)} label features in {str(path)!r} overlap the image {scene.path!r} "
            f"(image bounds {[round(v, 2) for v in (left, bottom, right, top)]}, label bounds "
            f"{[round(float(v), 2) for v in lb]} in {scene.crs.to_string()}); "
            "check that labels and image cover the same place"
        )
    if dropped:
        log.warning("%s: %d of %d label feature(s) lie outside the image %s and were dropped",
                    path.name, dropped, len(geoms), Path(scene.path).name)
    report = LabelReport(
        image=scene.path, labels=str(path.resolve()), kind="vector", features=len(geoms), dropped_outside=dropped,
        clipped_at_edge=int((inside & ~shapely.within(geoms, footprint)).sum()), repaired_invalid=loaded.repaired,
        dropped_empty=loaded.dropped_empty, reprojected_from=loaded.source_crs if loaded.reprojected else None,
        dropped_not_polygon=loaded.dropped_not_polygon,
    )
    return VectorLabels(geoms[inside], values[inside], report)


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
    key = cache_key(
        image=file_fingerprint(scene.path), labels=file_fingerprint(path), column=class_column, layer=layer,
        fill=fill, classes=list(class_ids), ignore=ignore_id, version=_VERSION,
    )
    out = cache_dir / f"labels-{Path(scene.path).stem}-{key}.tif"
    report_path = out.with_suffix(".json")
    if out.exists() and report_path.exists():
        log.info("reusing rasterised labels %s", out)
        return PreparedLabels(str(out), LabelReport(**json.loads(report_path.read_text())))

    labels = load_vector_labels(scene, path, class_ids=class_ids, ignore_id=ignore_id, class_column=class_column,
                                layer=layer)
    report, n_inside = labels.report, len(labels.geoms)
    if not n_inside:
        if fill == ignore_id:
            raise LabelError(
                f"vector labels {str(path)!r} are empty and unlabelled pixels are ignored: nothing to learn from"
            )
        log.warning("%s: no label features; every pixel of %s gets class %d", path.name, Path(scene.path).name, fill)

    order = np.argsort(-shapely.area(labels.geoms), kind="stable")  # small shapes are burnt last, on top
    shapes_geoms, shapes_values = labels.geoms[order], labels.values[order]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, overwrite=True) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=scene.width, height=scene.height, count=1, dtype="uint8",
        crs=scene.crs, transform=scene.affine, nodata=NODATA, tiled=True, compress="deflate",
    ) as dst:
        _burn(dst, scene, shapes_geoms, shapes_values, fill=fill)
    with atomic_path(report_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(report.to_dict()))
    log.info("rasterised %d label feature(s) of %s onto %s", n_inside, path.name, Path(scene.path).name)
    return PreparedLabels(str(out), report)
