"""Polygonising one block of a class raster: the work of one Dask task.

A task receives the raster's path and a block window, opens the file itself
and returns a small :class:`BlockResult`:

* objects that touch no interior block edge are whole: they are finished here
  (:func:`geoseg.polygons.finish_polygons`) and come back as features;
* objects that touch an interior edge ("open pieces") come back raw, in
  global pixel coordinates, with their confidence sums, together with, for
  each interior edge, which open piece owns each edge pixel, so that the client
  can join pieces across seams (:mod:`geoseg.seam_merge`).

Polygons are traced with 4-connectivity, in exact pixel coordinates
(:func:`pixel_transform`), so pieces from neighbouring blocks share seam
vertices exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..io.rasters import open_raster, read_window
from ..measure import MetricFrame
from ..tiling import PixelWindow, pixel_transform
from .finish import FeatureBatch, PieceStats, PolygonOptions, finish_polygons, polygonal_parts
from .split import SplitJob, split_objects

__all__ = [
    "VectorizeJob", "BlockResult", "OpenPieces", "vectorize_block", "trace_block", "count_values",
    "SIDES",
]

#: Interior edges of a block, in the order they are reported.
SIDES = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class VectorizeJob:
    """Everything a block task needs; small and picklable."""

    raster: str
    class_ids: tuple[int, ...]
    height: int
    width: int
    transform: tuple[float, float, float, float, float, float]
    frame: MetricFrame
    options: PolygonOptions
    confidence: str | None = None
    #: Split touching buildings of whole objects (see :mod:`geoseg.vectorization.split`); None: no splitting.
    split: SplitJob | None = None


@dataclass
class OpenPieces:
    """Pieces of objects cut by interior block edges, in global pixel coordinates."""

    wkb: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    stats: PieceStats | None = None

    def __len__(self) -> int:
        return len(self.wkb)


@dataclass
class BlockResult:
    """What one block task returns."""

    index: int
    window: PixelWindow
    features: FeatureBatch
    pieces: OpenPieces
    #: For each interior side: the open piece (index into ``pieces``) owning each edge pixel, -1 for none.
    edges: dict[str, np.ndarray]


def _nodata(ds) -> int | None:
    nodata = ds.nodata
    return int(nodata) if nodata is not None and float(nodata).is_integer() else None


def count_values(raster: str, window: PixelWindow) -> np.ndarray:
    """Pixel counts of the valid values 0..254 in one block (to find the classes present)."""
    with open_raster(raster) as ds:
        (data,), mask = read_window(raster, window, dataset=ds, dtype=None)
        nodata = _nodata(ds)
    keep = (data >= 0) & (data < 255) & mask
    if nodata is not None:
        keep &= data != nodata
    return np.bincount(data[keep].astype(np.int64), minlength=255)[:255]


def _edge_owners(line: np.ndarray, xs: np.ndarray, ys: np.ndarray, tree) -> np.ndarray:
    """Which open piece owns each pixel of an edge line (class value or -1), given pixel centres."""
    import shapely

    n = len(line)
    starts = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
    lengths = np.diff(np.r_[starts, n])
    owner = np.full(len(starts), -1, dtype=np.int32)
    runs = np.flatnonzero(line[starts] >= 0)
    if len(runs):
        # A run of equal classes along an edge is 4-connected, so one point finds its piece.
        points = shapely.points(xs[starts[runs]], ys[starts[runs]])
        point_idx, piece_idx = tree.query(points, predicate="intersects")
        owner[runs[point_idx]] = piece_idx
        if (owner[runs] < 0).any():
            raise RuntimeError("internal error: an edge pixel lies in no traced polygon")
    return np.repeat(owner, lengths)


def _piece_stats(geoms: np.ndarray, crop: PixelWindow, job: VectorizeJob) -> PieceStats:
    """Sum, count and maximum of valid confidence values under each polygon (all inside ``crop``)."""
    from rasterio.features import rasterize

    n = len(geoms)
    if n == 0:
        return PieceStats.empty()
    if job.confidence is None:
        raise ValueError("confidence statistics need the job's confidence raster")
    with open_raster(job.confidence) as ds:
        (conf,), mask = read_window(job.confidence, crop, dataset=ds, dtype=None)
        nodata = _nodata(ds)
    # Polygons follow pixel edges, so burning them by pixel centre gives back exactly their pixels.
    labels = rasterize(
        ((g, i + 1) for i, g in enumerate(geoms)),
        out_shape=(crop.height, crop.width),
        transform=pixel_transform(crop),
        fill=0,
        dtype="int32",
    )
    use = (labels > 0) & mask
    if nodata is not None:
        use &= conf != nodata
    idx = labels[use]
    values = conf[use]
    count = np.bincount(idx, minlength=n + 1)[1:].astype(np.int64)
    total = np.bincount(idx, weights=values, minlength=n + 1)[1:]
    peak = np.zeros(n + 1, dtype=np.uint8)
    np.maximum.at(peak, idx, values)
    return PieceStats(total, count, peak[1:])


def _polygons_from_geojson(geojson: list[dict]) -> np.ndarray:
    """Shapely polygons from GeoJSON-like polygon mappings, built in bulk (much faster than one by one)."""
    import shapely

    rings: list = []
    owner: list[int] = []
    for i, g in enumerate(geojson):
        rings += g["coordinates"]
        owner += [i] * len(g["coordinates"])
    if not rings:
        return np.zeros(0, dtype=object)
    lengths = np.fromiter((len(r) for r in rings), dtype=np.int64, count=len(rings))
    coords = np.fromiter(
        (c for ring in rings for xy in ring for c in xy), dtype=np.float64, count=2 * int(lengths.sum())
    ).reshape(-1, 2)
    linear = shapely.linearrings(coords, indices=np.repeat(np.arange(len(rings)), lengths))
    # With indices, the first ring of each polygon is its shell and the others its holes.
    return np.asarray(shapely.polygons(linear, indices=np.asarray(owner)), dtype=object)


def vectorize_block(job: VectorizeJob, window: PixelWindow, index: int) -> BlockResult:
    """Polygonise the selected classes of one block (opens the raster itself)."""
    with open_raster(job.raster) as ds:  # closing it frees its cached blocks
        (data,), mask = read_window(job.raster, window, dataset=ds, dtype=None)
        nodata = _nodata(ds)
    if nodata in job.class_ids:  # select_classes refuses this already; a job built elsewhere may not
        raise InputError(f"class id {nodata} is the raster's nodata value; it cannot be vectorised")
    return trace_block(job, window, index, data, mask)


def trace_block(job: VectorizeJob, window: PixelWindow, index: int, data: np.ndarray, mask: np.ndarray) -> BlockResult:
    """Polygonise the selected classes of ``data``, the class ids of ``window``, where ``mask`` is True.

    The array half of :func:`vectorize_block`, for callers that already hold
    the window (evaluation traces truth rasters with it, so truth and
    predictions are polygonised alike).  ``job.raster`` is not read.
    """
    import shapely
    from rasterio.features import shapes

    if len(job.class_ids) == 1:
        selected = data == job.class_ids[0]
    elif data.dtype == np.uint8:
        lookup = np.zeros(256, dtype=bool)
        lookup[list(job.class_ids)] = True
        selected = lookup[data]
    else:
        selected = np.isin(data, job.class_ids)
    labels = data if data.dtype == np.uint8 else np.where(selected, data, 0).astype(np.uint8)
    selected &= mask
    with_conf = job.confidence is not None
    empty_stats = PieceStats.empty() if with_conf else None
    interior = {
        "top": window.row_off > 0,
        "bottom": window.row_end < job.height,
        "left": window.col_off > 0,
        "right": window.col_end < job.width,
    }
    edge_len = {"top": window.width, "bottom": window.width, "left": window.height, "right": window.height}
    if not selected.any():
        edges: dict[str, np.ndarray] = {s: np.full(edge_len[s], -1, dtype=np.int32) for s in SIDES if interior[s]}
        features = finish_polygons(
            np.empty(0, dtype=object), np.empty(0, dtype=np.int32), empty_stats,
            transform=job.transform, frame=job.frame, options=job.options,
        )
        return BlockResult(index, window, features, OpenPieces(stats=empty_stats), edges)

    # Trace only the bounding box of the selected pixels: small classes are often sparse.
    used_rows, used_cols = np.flatnonzero(selected.any(axis=1)), np.flatnonzero(selected.any(axis=0))
    r0, r1, c0, c1 = int(used_rows[0]), int(used_rows[-1]) + 1, int(used_cols[0]), int(used_cols[-1]) + 1
    crop = PixelWindow(window.row_off + r0, window.col_off + c0, r1 - r0, c1 - c0)
    traced = list(
        shapes(labels[r0:r1, c0:c1], mask=selected[r0:r1, c0:c1], connectivity=4, transform=pixel_transform(crop))
    )
    geoms = _polygons_from_geojson([g for g, _ in traced])
    classes = np.array([int(v) for _, v in traced], dtype=np.int32)
    # GDAL may trace a ring that touches itself where pixels meet diagonally; repair those here.
    for i in np.flatnonzero(~shapely.is_valid(geoms)):
        geoms[i] = shapely.union_all(polygonal_parts(geoms[i : i + 1])[0])

    minx, miny, maxx, maxy = shapely.bounds(geoms).T
    touches = {
        "top": interior["top"] & (maxy == -window.row_off),
        "bottom": interior["bottom"] & (miny == -window.row_end),
        "left": interior["left"] & (minx == window.col_off),
        "right": interior["right"] & (maxx == window.col_end),
    }
    is_open = touches["top"] | touches["bottom"] | touches["left"] | touches["right"]
    stats = _piece_stats(geoms, crop, job) if with_conf else None

    final = np.flatnonzero(~is_open)
    whole = geoms[final], classes[final], None if stats is None else stats.take(final)
    if job.split is not None:  # on whole objects only, so the block grid never changes the split
        whole = split_objects(job.split, *whole)
    features = finish_polygons(*whole, transform=job.transform, frame=job.frame, options=job.options)

    opened = np.flatnonzero(is_open)
    open_geoms = geoms[opened]
    edges = {}
    tree = shapely.STRtree(open_geoms) if len(opened) else None
    rows = -(window.row_off + np.arange(window.height) + 0.5)
    cols = window.col_off + np.arange(window.width) + 0.5
    for side in SIDES:
        if not interior[side]:
            continue
        if tree is None or not touches[side].any():
            edges[side] = np.full(edge_len[side], -1, dtype=np.int32)
            continue
        if side in ("top", "bottom"):
            r = 0 if side == "top" else window.height - 1
            line = np.where(selected[r], labels[r].astype(np.int16), np.int16(-1))
            xs, ys = cols, np.full(window.width, -(window.row_off + r + 0.5))
        else:
            c = 0 if side == "left" else window.width - 1
            line = np.where(selected[:, c], labels[:, c].astype(np.int16), np.int16(-1))
            xs, ys = np.full(window.height, window.col_off + c + 0.5), rows
        edges[side] = _edge_owners(line, xs, ys, tree)
    pieces = OpenPieces(
        wkb=np.asarray(shapely.to_wkb(open_geoms), dtype=object),
        class_id=classes[opened],
        stats=None if stats is None else stats.take(opened),
    )
    return BlockResult(index, window, features, pieces, edges)
