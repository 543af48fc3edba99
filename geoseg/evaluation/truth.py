"""Truth labels read on the prediction's grid, one window at a time.

Two sources give the same interface, :meth:`read` (a window of uint8 class
ids, 255 where there is no truth) and :meth:`read_preview` (the whole extent
at a coarser grid):

- :class:`RasterTruth`, a GeoTIFF of class ids, checked like every class
  raster (:func:`geoseg.io.class_rasters.inspect_class_raster`).  On the
  prediction's grid (:func:`geoseg.io.grid.same_grid`) it is read directly;
  on any other grid (CRS, transform or size) it is warped onto the
  prediction's grid with nearest neighbour through a
  ``rasterio.vrt.WarpedVRT``, which reads and warps only the requested window.
  Either way windows go through :func:`geoseg.io.rasters.read_window`.
- :class:`VectorTruth`, polygons with a class column (GeoPackage, GeoJSON ...)
  in any CRS, reprojected explicitly to the prediction's CRS and rasterised
  window by window (``rasterio.features.rasterize`` with the polygons an
  STRtree finds in the window; pixel centres decide).  Where polygons
  overlap, the smaller one is drawn on top, so a building inside a vegetation
  polygon keeps its class.  Pixels outside every polygon get ``background``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import NODATA
from ..errors import InputError, LabelError
from ..io.class_rasters import inspect_class_raster
from ..io.grid import grid_bounds, overlaps_grid, rescaled_transform, same_grid
from ..io.rasters import SceneInfo, check_input_path, open_raster, read_overview, read_window
from ..io.vectors import crs_label, is_vector_path, list_polygon_layers, read_polygon_layer
from ..tiling import PixelWindow

__all__ = ["RasterTruth", "VectorTruth", "open_truth"]


def _window(window: PixelWindow):
    from rasterio.windows import Window

    return Window(window.col_off, window.row_off, window.width, window.height)


def _to_class_ids(data: np.ndarray, mask: np.ndarray, *, strict: bool, where: str) -> np.ndarray:
    """uint8 class ids with 255 where ``mask``; values outside 0..255 fail (``strict``) or become 255."""
    if data.dtype == np.uint8:
        out = data.copy()
    else:
        out_of_range = ~mask & ((data < 0) | (data > NODATA))
        if out_of_range.any():
            if strict:
                bad = sorted({int(v) for v in np.unique(data[out_of_range])[:10]})
                raise LabelError(
                    f"truth holds values {bad} {where}, outside the class ids 0..254; fix the truth raster"
                )
            mask = mask | out_of_range
        out = np.where(mask, 0, data).astype(np.uint8)
    out[mask] = NODATA
    return out


class RasterTruth:
    """A truth GeoTIFF read on the prediction's grid (warped with nearest neighbour if on another grid)."""

    kind = "raster"

    def __init__(self, path: str | os.PathLike[str], grid: SceneInfo) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT
        from rasterio.warp import transform_bounds

        self.path = Path(path)
        self.grid = grid
        self.notes: list[str] = []
        self.reprojected_from: str | None = None
        self.resampled = False
        inspect_class_raster(path, what="truth")
        self._ds = open_raster(path)
        ds = self._ds
        try:
            name = str(path)
            if not overlaps_grid(transform_bounds(ds.crs, grid.crs, *ds.bounds, densify_pts=21), grid):
                raise InputError(f"truth {name!r} does not overlap the prediction; check both cover the same area")
            self._nodata = ds.nodata if ds.nodata is not None else NODATA
            if same_grid(ds, grid):
                self._reader = ds
            else:
                self.resampled = True
                if ds.crs != grid.crs:
                    self.reprojected_from = crs_label(ds.crs)
                    self.notes.append(
                        f"truth reprojected from {self.reprojected_from} to {crs_label(grid.crs)} "
                        f"onto the prediction grid (nearest neighbour)"
                    )
                else:
                    self.notes.append("truth resampled onto the prediction grid (nearest neighbour)")
                self._reader = WarpedVRT(
                    ds,
                    crs=grid.crs,
                    transform=grid.affine,
                    width=grid.width,
                    height=grid.height,
                    resampling=Resampling.nearest,
                    nodata=self._nodata,
                )
        except Exception:
            ds.close()
            raise

    def read(self, window: PixelWindow) -> np.ndarray:
        where = f"in rows {window.row_off}:{window.row_end}, cols {window.col_off}:{window.col_end}"
        (data,), valid = read_window(self.path, window, dataset=self._reader, dtype=None, what="truth")
        return _to_class_ids(data, ~valid, strict=True, where=where)

    def read_preview(self, height: int, width: int) -> np.ndarray:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        if not self.resampled:
            (data,), valid = read_overview(
                self.path, height=height, width=width, resampling="nearest", dataset=self._ds, what="truth"
            )
        else:
            with WarpedVRT(
                self._ds,
                crs=self.grid.crs,
                transform=rescaled_transform(self.grid, height, width),
                width=width,
                height=height,
                resampling=Resampling.nearest,
                nodata=self._nodata,
            ) as vrt:
                whole = PixelWindow(0, 0, height, width)
                (data,), valid = read_window(self.path, whole, dataset=vrt, dtype=None, what="truth")
        return _to_class_ids(data, ~valid, strict=False, where="")

    def close(self) -> None:
        if self._reader is not self._ds:
            self._reader.close()
        self._ds.close()


class VectorTruth:
    """Truth polygons with a class column, reprojected to the prediction CRS and rasterised per window."""

    kind = "vector"
    resampled = False

    def __init__(
        self, path: str | os.PathLike[str], grid: SceneInfo, *, class_column: str = "class_id", background: int = 0
    ) -> None:
        import geopandas as gpd
        import pandas as pd
        import shapely

        self.path = Path(path)
        self.grid = grid
        self.background = int(background)
        self.notes: list[str] = []
        name = str(path)
        layers = list_polygon_layers(path, "truth")
        if not layers:
            raise InputError(f"truth {name!r} has no layer with geometries")
        frames, sources = [], set()
        for layer in layers:
            read = read_polygon_layer(
                path, target_crs=grid.crs_wkt, layer=layer if len(layers) > 1 else None, what="truth"
            )
            if class_column not in read.frame.columns:
                columns = [c for c in read.frame.columns if c != read.frame.geometry.name]
                raise InputError(
                    f"truth {name!r} (layer {layer!r}) has no column {class_column!r}; columns: {columns}; "
                    f"pass --class-column to name the column holding class ids"
                )
            part = read.frame[[class_column, read.frame.geometry.name]]
            if part.geometry.name != "geometry":
                part = part.rename_geometry("geometry")
            frames.append(part)
            if read.source_crs is not None:
                sources.add(read.source_crs)
            self.notes.extend(read.notes)
        frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs)
        other = sorted(s for s in sources if s != crs_label(grid.crs))
        self.reprojected_from = ", ".join(other) if other else None
        values = pd.to_numeric(frame[class_column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            examples = frame.loc[bad, class_column].astype(str).unique()[:5].tolist()
            raise LabelError(
                f"truth {name!r}: {int(bad.sum())} features have no integer class id in {class_column!r} "
                f"(e.g. {examples}); fix them or pass --class-column"
            )
        values = values.astype(np.int64)
        out_of_range = (values < 0) | (values > NODATA)
        if out_of_range.any():
            raise LabelError(
                f"truth {name!r}: class ids {sorted(values[out_of_range].unique().tolist())[:10]} are outside "
                f"0..254; fix the labels"
            )
        west, south, east, north = grid_bounds(grid)
        inside = frame.geometry.intersects(shapely.box(west, south, east, north))
        if not inside.any():
            if len(frame):
                raise InputError(f"truth {name!r} does not overlap the prediction; check both cover the same area")
            raise InputError(f"truth {name!r} holds no polygons")
        if (~inside).sum():
            self.notes.append(f"truth: {int((~inside).sum())} polygons outside the prediction extent left out")
        frame, values = frame.loc[inside], values.loc[inside]
        # Largest first, so smaller polygons are drawn on top of larger ones they overlap.
        order = np.argsort(-frame.geometry.area.to_numpy(), kind="stable")
        self._geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)[order]
        self._values = values.to_numpy()[order]
        self._tree = shapely.STRtree(self._geoms)

    def class_counts(self) -> Counter[int]:
        """Number of polygons per class id."""
        return Counter(int(v) for v in self._values)

    def _rasterize(self, indices: np.ndarray, shape: tuple[int, int], transform: Any) -> np.ndarray:
        from rasterio.features import rasterize

        if len(indices) == 0:
            return np.full(shape, self.background, dtype=np.uint8)
        return rasterize(
            zip(self._geoms[indices], self._values[indices].tolist(), strict=True),
            out_shape=shape,
            transform=transform,
            fill=self.background,
            dtype="uint8",
        )

    def read(self, window: PixelWindow) -> np.ndarray:
        import shapely
        from rasterio.windows import bounds, transform

        win = _window(window)
        hits = np.sort(self._tree.query(shapely.box(*bounds(win, self.grid.affine)), predicate="intersects"))
        return self._rasterize(hits, (window.height, window.width), transform(win, self.grid.affine))

    def read_preview(self, height: int, width: int) -> np.ndarray:
        return self._rasterize(
            np.arange(len(self._geoms)), (height, width), rescaled_transform(self.grid, height, width)
        )

    def polygons(self, class_id: int) -> list[Any]:
        """Truth polygons of ``class_id`` (in the prediction CRS)."""
        return list(self._geoms[self._values == int(class_id)])

    def close(self) -> None:
        """Nothing to release: the polygons are in memory (same interface as RasterTruth)."""


def open_truth(
    path: str | os.PathLike[str], grid: SceneInfo, *, class_column: str = "class_id", background: int = 0
) -> RasterTruth | VectorTruth:
    """A raster (.tif/.tiff) or vector truth source for the prediction grid ``grid``."""
    p = check_input_path(path, "truth")
    if is_vector_path(p):
        return VectorTruth(p, grid, class_column=class_column, background=background)
    if p.suffix.lower() in (".tif", ".tiff"):
        return RasterTruth(p, grid)
    raise InputError(
        f"truth {str(p)!r}: unknown file type {p.suffix!r}; give a GeoTIFF of class ids (.tif) or polygons "
        f"(.gpkg, .geojson, .json, .fgb, .shp)"
    )
