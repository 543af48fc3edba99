"""Model files without torch: where they are, and reading their cards.

A model file is safetensors; its header's metadata holds the card as JSON under
:data:`CARD_KEY`.  Reading a card needs only the header, so the CLI and the
Dask client can check a model before any worker loads it.  The header is
untrusted bytes: it is read with a size cap, and its tensor table is checked
against the file (every tensor's bytes inside the file, sizes matching shapes),
so a truncated or forged file fails here with a one-line error, not in a worker.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..safety.files import regular_file
from ..safety.limits import MAX_MODEL_BYTES, MAX_MODEL_HEADER_BYTES
from .card import ModelCard

__all__ = ["CARD_KEY", "SHIPPED_MODELS", "DEFAULT_MODEL", "card_from_bytes", "parse_header", "read_card",
           "resolve_model_path"]

CARD_KEY = "geoseg.card"
_WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Short names of the models shipped inside the package.
SHIPPED_MODELS: dict[str, Path] = {
    "buildings": _WEIGHTS_DIR / "buildings.safetensors",
    # buildings and vehicles together, 15 cm (pipelines/ship_vehicle_model.py)
    "vehicles": _WEIGHTS_DIR / "vehicles.safetensors",
}
DEFAULT_MODEL = "buildings"
#: Bytes per element of each safetensors dtype.
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """Map ``None`` or a shipped short name to its file; check a given path is an existing regular file."""
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in SHIPPED_MODELS:
        path = SHIPPED_MODELS[model]
        if not path.exists():
            raise ModelError(
                f"the shipped model {model!r} is missing from this installation ({path}); reinstall geoseg"
            )
        return path
    path = Path(model)
    if not path.exists():
        names = ", ".join(sorted(SHIPPED_MODELS))
        raise ModelError(
            f"model file {str(path)!r} does not exist; give a .safetensors path or a shipped name ({names})"
        )
    if path.is_dir():  # a segmentation-models-pytorch save_pretrained folder
        from .smp_folder import is_smp_folder

        if not is_smp_folder(path):
            raise ModelError(f"{str(path)!r} is a folder without config.json; give a model file or an smp folder")
        return path
    return regular_file(path, "model file", error=ModelError)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tensor(name: str, entry: Any, data_size: int) -> tuple[int, int]:
    """``(begin, end)`` of one tensor's bytes after checking its entry; ``ValueError`` if malformed."""
    if not isinstance(entry, Mapping) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"tensor {name!r} has a malformed entry")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise ValueError(f"tensor {name!r} has a malformed shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(n) for n in offsets):
        raise ValueError(f"tensor {name!r} has malformed data offsets {offsets!r}")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise ValueError(f"tensor {name!r} lies outside the file (bytes {begin}..{end} of {data_size}): truncated?")
    if math.prod(shape) * _DTYPE_BYTES[dtype] != end - begin:
        raise ValueError(f"tensor {name!r} of shape {shape} {dtype} does not fill its {end - begin} bytes")
    return begin, end


def parse_header(head: bytes, file_size: int) -> dict[str, Any]:
    """The JSON header of a safetensors file whose first bytes are ``head``; ``ValueError`` if malformed.

    ``head`` holds at least the 8-byte length and the header itself; ``file_size`` is the whole file's.
    """
    if len(head) < 8:
        raise ValueError("the file is too short for a safetensors header")
    (size,) = struct.unpack("<Q", head[:8])
    if not 2 <= size <= MAX_MODEL_HEADER_BYTES:
        raise ValueError(f"the header length {size} is not between 2 and {MAX_MODEL_HEADER_BYTES} bytes")
    if 8 + size > file_size or len(head) < 8 + size:
        raise ValueError(f"the header length {size} reaches past the end of the file ({file_size} bytes): truncated?")
    try:
        header = json.loads(head[8 : 8 + size].decode("utf-8"))
    except RecursionError:
        raise ValueError("the header nests too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError("the header's __metadata__ is not a mapping of text to text")
    data_size = file_size - 8 - size
    spans = sorted(_check_tensor(name, entry, data_size) for name, entry in header.items() if name != "__metadata__")
    for (_, end), (begin, _) in itertools.pairwise(spans):
        if begin < end:
            raise ValueError("two tensors share bytes")
    return header


def card_from_bytes(data: bytes, name: str = "model file", *, file_size: int | None = None) -> ModelCard:
    """The card of a safetensors file whose first bytes (at least the whole header) are ``data``.

    ``file_size`` is the whole file's size (default: ``len(data)``).  Any malformed header or card is a
    one-line :class:`ModelError` naming ``name``.
    """
    try:
        header = parse_header(data, len(data) if file_size is None else file_size)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{name!r} is not a safetensors model file ({exc}); save models with geoseg.save_model "
            "(geoseg never loads pickles)"
        ) from None
    meta = header.get("__metadata__") or {}
    if CARD_KEY not in meta:
        raise ModelError(f"{name!r} has no geoseg model card in its header; save models with geoseg.save_model")
    try:
        return ModelCard.from_json(meta[CARD_KEY])
    except ModelError as exc:
        fix = "" if "upgrade geoseg" in str(exc) else "; fix the card, or save the model again with geoseg.save_model"
        raise ModelError(f"{name!r}: {exc}{fix}") from None


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read only the card of a model file (cheap: the header, not the weights), checking the header whole."""
    path = resolve_model_path(path)
    if path.is_dir():  # a segmentation-models-pytorch save_pretrained folder
        from .smp_folder import read_folder_card

        return read_folder_card(path)
    name = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) == 8:
                length = int.from_bytes(head, "little")
                head += fh.read(min(length, MAX_MODEL_HEADER_BYTES))
    except OSError as exc:
        raise ModelError(f"cannot read model file {name!r} ({exc.strerror or exc})") from None
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"model file {name!r} is {size / 2**30:.1f} GiB, more than geoseg loads "
                         f"({MAX_MODEL_BYTES / 2**30:g} GiB); check it is a geoseg model file")
    return card_from_bytes(head, name, file_size=size)
