"""Streaming finished features to a vector file: GeoPackage, GeoJSON, FlatGeobuf or GeoParquet.

The format follows the output's extension; an unknown extension is an error.
A GeoPackage gets one layer per class (named after the class), each created
up front, so a class without features still has its (empty) layer.  The other
formats hold one layer with every class, told apart by the ``class_id`` and
``class_name`` columns.  Every geometry is a MultiPolygon in the raster's CRS,
except in GeoJSON, which is written as RFC 7946 says: WGS 84 longitude and
latitude (reprojected by GDAL), counter-clockwise outer rings, 7 decimals.
GeoParquet needs pyarrow (the ``parquet`` extra).

Features are written in batches as they arrive: straight into the GeoPackage
(spatial index kept by GDAL), or, for formats that cannot be appended to, into
a GeoPackage spill file next to the output, converted in one streamed pass at
the end.  The caller writes to a temporary path (:func:`geoseg.atomic.atomic_path`)
that is renamed only once the file is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..atomic import TMP_MARKER
from ..errors import ConfigError, InputError
from .finish import FeatureBatch

__all__ = ["OUTPUT_FORMATS", "output_driver", "FeatureWriter", "GEOMETRY_TYPE"]

#: Output extensions and the driver each selects.
OUTPUT_FORMATS = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": "Parquet",
    ".geoparquet": "Parquet",
}
#: Every exported geometry has this type (objects repaired by make_valid may have several parts).
GEOMETRY_TYPE = "MultiPolygon"
#: Features buffered before a write to disk.
FLUSH_FEATURES = 20_000
#: GeoPackage version written: 1.3 opens without warnings in GDAL >= 3.3 and QGIS 3.
GPKG_VERSION = "1.3"


def output_driver(path: str | os.PathLike[str]) -> str:
    """The driver for ``path``'s extension; a ConfigError for anything else."""
    suffix = Path(path).suffix.lower()
    driver = OUTPUT_FORMATS.get(suffix)
    if driver is None:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise ConfigError(
            f"output {str(path)!r}: unknown vector format {suffix or '(no extension)'!r}; use one of {known}"
        )
    if driver == "Parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ConfigError(
                "GeoParquet output needs pyarrow; install it (pip install 'geoseg[parquet]') or write .gpkg"
            ) from None
    return driver


@contextlib.contextmanager
def _unsynced_sqlite() -> Iterator[None]:
    """Skip SQLite's fsync per transaction while writing the temporary file (it is synced once, at the end)."""
    import pyogrio

    key = "OGR_SQLITE_SYNCHRONOUS"
    before = pyogrio.get_gdal_config_option(key)
    pyogrio.set_gdal_config_options({key: "OFF"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({key: before})


class FeatureWriter:
    """Writes feature batches to ``path`` (a temporary path the caller renames when complete)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        driver: str,
        classes: Sequence[tuple[int, str]],
        crs_wkt: str,
        source: str,
        with_confidence: bool,
        layer_name: str = "features",
        rfc7946: bool = True,
        shape_classes: Sequence[int] = (),
    ) -> None:
        self.path = Path(path)
        #: GeoJSON only: write RFC 7946 (WGS 84 lon/lat); False keeps the raster's CRS (GeoJSON 2008).
        self.rfc7946 = rfc7946
        self.driver = driver
        self.crs_wkt = crs_wkt
        self.source = source
        self.with_confidence = with_confidence
        self.names = {int(i): name for i, name in classes}
        self.counts = {name: 0 for _, name in classes}
        self.multi_layer = driver == "GPKG"
        if self.multi_layer:
            lowered = [name.lower() for name in self.names.values()]
            if len(set(lowered)) != len(lowered):
                raise InputError(
                    f"class names {list(self.names.values())} differ only in case; GeoPackage layer names cannot"
                )
            self.store = self.path
            self.layers = dict(self.names)
        else:
            self.store = self.path.with_name(f"{self.path.stem}{TMP_MARKER}spill.gpkg")
            self.layers = {i: layer_name for i in self.names}
        self.layer_name = layer_name
        #: Layers that get the shape columns of oriented rectangles (vehicles; geoseg.vectorization.rectangles).
        self.shape_layers = {self.layers[int(i)] for i in shape_classes if int(i) in self.layers}
        self._buffer: list[FeatureBatch] = []
        self._buffered = 0
        self._created = False

    # -- columns -----------------------------------------------------------------------------
    def _fields(self, layer: str | None = None) -> list[str]:
        fields = ["class_id", "class_name", "area_m2", "perimeter_m"]
        if self.with_confidence:
            fields += ["conf_mean", "conf_max"]
        if layer in self.shape_layers:
            from .rectangles import SHAPE_FIELDS

            fields += list(SHAPE_FIELDS)
        return [*fields, "source"]

    def _field_data(self, batch: FeatureBatch, layer: str | None = None) -> list[np.ndarray]:
        names = np.array([self.names[int(i)] for i in batch.class_id], dtype=object)
        data = [
            batch.class_id.astype(np.int32), names, batch.area_m2.astype(np.float64),
            batch.perimeter_m.astype(np.float64),
        ]
        if self.with_confidence:
            n = len(batch)
            data += [
                np.full(n, np.nan) if batch.conf_mean is None else batch.conf_mean.astype(np.float64),
                np.full(n, np.nan) if batch.conf_max is None else batch.conf_max.astype(np.float64),
            ]
        if layer in self.shape_layers:
            shape = np.full((len(batch), 4), np.nan) if batch.shape is None else batch.shape.astype(np.float64)
            data += [shape[:, k].copy() for k in range(shape.shape[1])]
        return [*data, np.full(len(batch), self.source, dtype=object)]

    def _write(self, layer: str, batch: FeatureBatch, *, create: bool) -> None:
        from pyogrio.raw import write

        options: dict[str, dict[str, str]] = {}
        if create:
            options["layer_options"] = {"SPATIAL_INDEX": "YES" if self.multi_layer else "NO"}
            if not self._created:
                options["dataset_options"] = {"VERSION": GPKG_VERSION}
        with _unsynced_sqlite():
            write(
                str(self.store), batch.wkb, self._field_data(batch, layer), self._fields(layer), layer=layer,
                driver="GPKG", geometry_type=GEOMETRY_TYPE, crs=self.crs_wkt, append=not create, promote_to_multi=True,
                **options,
            )
        self._created = True

    # -- public ------------------------------------------------------------------------------
    def open(self) -> FeatureWriter:
        """Create every layer (empty)."""
        empty = FeatureBatch(conf_mean=np.zeros(0), conf_max=np.zeros(0))
        for layer in dict.fromkeys(self.layers.values()):
            self._write(layer, empty, create=True)
        return self

    def write(self, batch: FeatureBatch) -> None:
        if len(batch) == 0:
            return
        unknown = set(np.unique(batch.class_id).tolist()) - set(self.names)
        if unknown:
            raise RuntimeError(f"internal error: features of unselected classes {sorted(unknown)}")
        self._buffer.append(batch)
        self._buffered += len(batch)
        if self._buffered >= FLUSH_FEATURES:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        batch = FeatureBatch.concat(self._buffer)
        self._buffer, self._buffered = [], 0
        if self.multi_layer:
            for class_id in np.unique(batch.class_id).tolist():
                part = batch.take(np.flatnonzero(batch.class_id == class_id))
                self._write(self.layers[class_id], part, create=False)
                self.counts[self.names[class_id]] += len(part)
        else:
            self._write(self.layer_name, batch, create=False)
            for class_id, n in zip(*np.unique(batch.class_id, return_counts=True), strict=True):
                self.counts[self.names[int(class_id)]] += int(n)

    def close(self) -> dict[str, int]:
        """Flush, convert the spill file to the final format, sync to disk; return features per class."""
        self.flush()
        if not self.multi_layer:
            if self.driver == "Parquet":
                self._convert_to_parquet()
            else:
                self._convert_with_gdal()
            self.store.unlink()
        if self.driver == "GPKG":
            _pin_gpkg_time(self.path)
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())
        return dict(self.counts)

    def discard(self) -> None:
        """Remove the spill file (the caller removes the output's temporary file)."""
        if self.store != self.path:
            with contextlib.suppress(FileNotFoundError):
                self.store.unlink()

    # -- conversion of the spill file --------------------------------------------------------
    def _convert_with_gdal(self) -> None:
        import pyogrio

        options = {"RFC7946": "YES"} if self.driver == "GeoJSON" and self.rfc7946 else {}
        with pyogrio.open_arrow(str(self.store), layer=self.layer_name, use_pyarrow=False) as (meta, stream):
            pyogrio.write_arrow(
                stream, str(self.path), layer=self.layer_name, driver=self.driver,
                geometry_name=meta["geometry_name"] or "geom", geometry_type=GEOMETRY_TYPE, crs=self.crs_wkt,
                layer_options=options,
            )

    def _convert_to_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        import pyogrio
        import pyproj

        geo = {
            "version": "1.0.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": [GEOMETRY_TYPE],
                    "crs": pyproj.CRS.from_wkt(self.crs_wkt).to_json_dict(),
                }
            },
        }
        with pyogrio.open_arrow(str(self.store), layer=self.layer_name, use_pyarrow=True) as (meta, reader):
            geom = meta["geometry_name"] or "geom"
            names = [n for n in reader.schema.names if n != geom]
            schema = pa.schema(
                [pa.field(n, reader.schema.field(n).type) for n in names] + [pa.field("geometry", pa.binary())],
                metadata={"geo": json.dumps(geo)},
            )
            with pq.ParquetWriter(str(self.path), schema) as writer:
                for batch in reader:
                    arrays = [batch.column(n) for n in names] + [batch.column(geom).cast(pa.binary())]
                    writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))


#: ``last_change`` written into every GeoPackage, so that the same input gives the same bytes.
FIXED_GPKG_TIME = "1970-01-01T00:00:00.000Z"


def _pin_gpkg_time(path: Path) -> None:
    """Replace the write time GDAL stamps into ``gpkg_contents`` with :data:`FIXED_GPKG_TIME`."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE gpkg_contents SET last_change = ?", (FIXED_GPKG_TIME,))
