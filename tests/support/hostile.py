"""Hostile inputs, built by code: broken GeoTIFFs, size bombs, sneaky sidecars, bad model files and configs.

Every builder writes into a folder it is given and returns the path, so tests and
``fuzz/bad_inputs.py`` make the same fixtures and nothing binary is committed.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: UTM 36N near Kampala, 15 cm pixels: what the shipped building model expects.
CRS = "EPSG:32636"
ORIGIN = (450000.0, 40000.0)
RES = 0.15


# -- well-formed rasters (the starting point of most bad ones) --------------------------------


def write_scene(path: Path, *, size: int = 96, bands: int = 3, dtype: str = "uint8", res: float = RES,
                crs: str | None = CRS, seed: int = 0, **profile: Any) -> Path:
    """A georeferenced scene of random pixels (RGB uint8 by default, like the shipped model wants)."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    data = rng.integers(0, 255, (bands, size, size)).astype(dtype)
    options = {"tiled": True, "blockxsize": 64, "blockysize": 64, "compress": "deflate", **profile}
    if not options.get("tiled"):
        options.pop("blockxsize")
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=bands, dtype=dtype, crs=crs,
                       transform=from_origin(*ORIGIN, res, res), **options) as ds:
        ds.write(data)
    return path


def write_class_raster(path: Path, *, size: int = 96, classes: str | None = None, seed: int = 0) -> Path:
    """A class raster as ``geoseg predict`` writes it: uint8 ids 0/1, nodata 255, the class table tag."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    data = np.zeros((size, size), np.uint8)
    for _ in range(6):
        r, c = rng.integers(0, size - 12, 2)
        data[r : r + 10, c : c + 10] = 1
    table = classes if classes is not None else json.dumps(
        [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "building", "color": [230, 25, 75]}]
    )
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs=CRS,
                       transform=from_origin(*ORIGIN, RES, RES), nodata=255, tiled=True, blockxsize=64,
                       blockysize=64, compress="deflate") as ds:
        ds.write(data, 1)
        ds.update_tags(GEOSEG_CLASSES=table)
    return path


def write_confidence(path: Path, *, size: int = 96) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs=CRS,
                       transform=from_origin(*ORIGIN, RES, RES), nodata=0) as ds:
        ds.write(np.full((1, size, size), 200, np.uint8))
    return path


# -- broken GeoTIFFs --------------------------------------------------------------------------


def _block_offsets(path: Path) -> list[tuple[int, int]]:
    """``(offset, byte count)`` of every block of band 1 (GDAL's TIFF metadata domain)."""
    import rasterio

    out = []
    with rasterio.open(path) as ds:
        bh, bw = ds.block_shapes[0]
        for row in range((ds.height + bh - 1) // bh):
            for col in range((ds.width + bw - 1) // bw):
                off = ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1)
                size = ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1)
                if off and size:
                    out.append((int(off), int(size)))
    return out


def write_truncated(path: Path, *, fraction: float = 0.6) -> Path:
    """A valid scene cut short: the header reads, the last blocks are missing."""
    write_scene(path, size=256)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_header_only(path: Path) -> Path:
    """A Cloud-Optimized GeoTIFF (header first) cut where the pixel data begins."""
    import rasterio.shutil

    tmp = path.with_name(path.stem + ".src.tif")
    write_scene(tmp, size=128)
    rasterio.shutil.copy(tmp, path, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=64, OVERVIEWS="NONE")
    tmp.unlink()
    first = min(off for off, _ in _block_offsets(path))
    path.write_bytes(path.read_bytes()[:first])
    return path


def write_corrupt_blocks(path: Path) -> Path:
    """A deflate-tiled scene whose header is intact and whose compressed blocks are garbage."""
    write_scene(path, size=128)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for off, size in _block_offsets(path):
        data[off : off + size] = rng.bytes(size)
    path.write_bytes(bytes(data))
    return path


def write_random_bytes(path: Path, size: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(size))
    return path


def write_tiff_magic_only(path: Path) -> Path:
    """The 8-byte TIFF header pointing at a directory that is not there."""
    path.write_bytes(b"II*\x00" + struct.pack("<I", 1 << 30))
    return path


def write_vrt_as_tif(path: Path, target: Path) -> Path:
    """VRT XML named ``.tif``: opening it with any driver would read ``target``."""
    path.write_text(
        '<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>EPSG:32636</SRS>'
        "<GeoTransform>450000, 0.15, 0, 40000, 0, -0.15</GeoTransform>"
        + "".join(
            f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="0">'
            f"{target}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>"
            for b in (1, 2, 3)
        )
        + "</VRTDataset>"
    )
    return path


def write_msk_sidecar(scene: Path, source: str, *, bands: int = 3) -> Path:
    """A ``<scene>.msk`` that is really a VRT reading ``source`` (another file, or a /vsicurl/ URL)."""
    flags = "".join(f'<MDI key="INTERNAL_MASK_FLAGS_{b}">2</MDI>' for b in range(1, bands + 1))
    import rasterio

    with rasterio.open(scene) as ds:
        width, height = ds.width, ds.height
    sidecar = scene.with_name(scene.name + ".msk")
    sidecar.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><Metadata>{flags}</Metadata>'
        f'<VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename relativeToVRT="0">{source}'
        "</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )
    return sidecar


def write_aux_xml_sidecar(scene: Path, *, classes: str = "not json") -> Path:
    """A ``<scene>.aux.xml`` (GDAL PAM) that would smuggle in metadata the file does not hold."""
    sidecar = scene.with_name(scene.name + ".aux.xml")
    sidecar.write_text(
        f'<PAMDataset><Metadata><MDI key="GEOSEG_CLASSES">{classes}</MDI></Metadata></PAMDataset>'
    )
    return sidecar


# -- hand-made TIFFs: declared sizes far beyond the bytes in the file -------------------------

_TYPES = {"SHORT": (3, "H"), "LONG": (4, "I"), "DOUBLE": (12, "d")}


def _ifd_entry(tag: int, kind: str, values: Sequence[float]) -> tuple[int, int, int, bytes]:
    code, fmt = _TYPES[kind]
    return tag, code, len(values), struct.pack("<" + fmt * len(values), *values)


def _deflated_zeros(size: int) -> bytes:
    """A deflate stream of ``size`` zero bytes (about a thousandth of ``size``)."""
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    parts = [comp.compress(chunk) for _ in range(size // len(chunk))]
    parts += [comp.compress(b"\0" * (size % len(chunk))), comp.flush()]
    return b"".join(parts)


def write_declared_size(path: Path, *, width: int, height: int, rows_per_strip: int | None = None,
                        bands: int = 3, full_strip: bool = False) -> Path:
    """A small deflate GeoTIFF declaring ``width`` x ``height`` pixels in strips of ``rows_per_strip`` rows.

    Every strip points at the same bytes.  With ``full_strip`` they are a complete deflate stream of
    one strip of zeros (a decompression bomb for whatever reads a strip whole); otherwise a few
    bytes (reading fails, but walking every pixel of the declared size would take hours).
    """
    rows = rows_per_strip or height
    strips = (height + rows - 1) // rows
    payload = _deflated_zeros(rows * width * bands) if full_strip else zlib.compress(b"\0" * 4096)
    spec: list[tuple[int, str, list[float]]] = [
        (256, "LONG", [width]), (257, "LONG", [height]), (258, "SHORT", [8] * bands), (259, "SHORT", [8]),
        (262, "SHORT", [2 if bands == 3 else 1]), (273, "LONG", [0] * strips), (277, "SHORT", [bands]),
        (278, "LONG", [rows]), (279, "LONG", [len(payload)] * strips), (284, "SHORT", [1]),
        (339, "SHORT", [1] * bands), (33550, "DOUBLE", [RES, RES, 0.0]),
        (33922, "DOUBLE", [0.0, 0.0, 0.0, ORIGIN[0], ORIGIN[1], 0.0]),
        (34735, "SHORT", [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32636]),
    ]
    ifd_at = 8
    cursor = ifd_at + 2 + 12 * len(spec) + 4
    out_of_line = sum(len(_ifd_entry(t, k, v)[3]) for t, k, v in spec if len(_ifd_entry(t, k, v)[3]) > 4)
    payload_at = cursor + out_of_line
    spec[5] = (273, "LONG", [payload_at] * strips)
    ifd = bytearray(struct.pack("<H", len(spec)))
    blobs = bytearray()
    for tag, kind, values in spec:
        tag, code, count, raw = _ifd_entry(tag, kind, values)
        if len(raw) <= 4:
            ifd += struct.pack("<HHI", tag, code, count) + raw.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, code, count, cursor + len(blobs))
            blobs += raw
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\0" + struct.pack("<I", ifd_at) + bytes(ifd) + bytes(blobs) + payload)
    return path


# -- vectors ----------------------------------------------------------------------------------


def write_polygons(path: Path, *, driver: str | None = None, class_column: str = "class_id", value: Any = 1) -> Path:
    """A few square buildings over the test scenes' extent, in their CRS."""
    import geopandas as gpd
    from shapely.geometry import box

    x0, y0 = ORIGIN
    geoms = [box(x0 + 1 + 3 * i, y0 - 5 - 3 * i, x0 + 2.5 + 3 * i, y0 - 3.5 - 3 * i) for i in range(3)]
    frame = gpd.GeoDataFrame({class_column: [value] * len(geoms)}, geometry=geoms, crs=CRS)
    frame.to_file(path, driver=driver, engine="pyogrio")
    return path


def write_ogr_vrt(path: Path, target: str | Path, *, layer: str = "x") -> Path:
    """OGR VRT XML under a vector suffix: opening it reads ``target`` (another file or a URL)."""
    path.write_text(
        f'<OGRVRTDataSource><OGRVRTLayer name="{layer}"><SrcDataSource>{target}</SrcDataSource>'
        "</OGRVRTLayer></OGRVRTDataSource>"
    )
    return path


# -- model files ------------------------------------------------------------------------------


def shipped_card() -> dict[str, Any]:
    """The shipped building model's card as a plain mapping (the base of broken cards)."""
    from geoseg.model.file import read_card

    data = read_card("buildings").to_dict()
    data["metadata"] = {}
    return data


def write_safetensors(path: Path, tensors: Mapping[str, np.ndarray], *, card: str | Mapping[str, Any] | None,
                      header_extra: Mapping[str, Any] | None = None) -> Path:
    """A safetensors file written by hand (no torch): any card text, any tensors."""
    header: dict[str, Any] = {}
    offset = 0
    blobs = []
    codes = {"float32": "F32", "float16": "F16", "int64": "I64", "uint8": "U8"}
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": codes[str(array.dtype)], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if card is not None:
        header["__metadata__"] = {"geoseg.card": card if isinstance(card, str) else json.dumps(card)}
    header.update(header_extra or {})
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def write_card_only_model(path: Path, card: str | Mapping[str, Any]) -> Path:
    """A model file holding only a card (and one dummy tensor): enough for every card check."""
    return write_safetensors(path, {"dummy": np.zeros(1, np.float32)}, card=card)


def write_mismatched_weights(path: Path) -> Path:
    """The shipped card with tensors of the right names but the wrong shapes."""
    from safetensors.numpy import load_file

    from geoseg.model.file import SHIPPED_MODELS

    state = load_file(str(SHIPPED_MODELS["buildings"]))
    wrong = {k: np.zeros(tuple(s + 1 for s in v.shape), v.dtype) if k.endswith("weight") and v.ndim == 4 else v
             for k, v in state.items()}
    return write_safetensors(path, wrong, card=shipped_card())


def write_truncated_weights(path: Path) -> Path:
    """The shipped model cut in half: the header is whole, the tensors are not."""
    from geoseg.model.file import SHIPPED_MODELS

    data = SHIPPED_MODELS["buildings"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_deep_json_card(path: Path, depth: int = 100_000) -> Path:
    return write_card_only_model(path, "[" * depth + "]" * depth)


# -- YAML -------------------------------------------------------------------------------------


def billion_laughs(levels: int = 9, width: int = 9, *, flow: bool = False) -> str:
    """The classic YAML alias bomb: ``width ** levels`` leaves from a few hundred bytes.

    ``flow``: on one line (``{a0: &a0 [...], ...}``), e.g. for a ``--set key=value`` value.
    """
    lines = [f"a0: &a0 [{','.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "{" + ", ".join(lines) + "}" if flow else "\n".join(lines) + "\n"


def deep_yaml(depth: int = 50_000) -> str:
    return "x: " + "[" * depth + "]" * depth + "\n"


# -- special files ----------------------------------------------------------------------------


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def stac_catalog(folder: Path, hrefs: Mapping[str, str], *, links: Sequence[str] = ()) -> Path:
    """A local STAC catalog: one item per ``{id: asset href}``, plus extra child ``links``."""
    folder.mkdir(parents=True, exist_ok=True)
    item_links = []
    for item_id, href in hrefs.items():
        item = {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "geometry": None, "properties": {},
                "links": [], "assets": {"image": {"href": href, "type": "image/tiff; application=geotiff",
                                                  "roles": ["data"]}}}
        (folder / f"{item_id}.json").write_text(json.dumps(item))
        item_links.append({"rel": "item", "href": f"./{item_id}.json"})
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "cat", "description": "test",
               "links": item_links + [{"rel": "child", "href": h} for h in links]}
    path = folder / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder`` with its bytes (links by target), to compare before and after a run."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "dir" if path.is_dir() else "special"
    return out
