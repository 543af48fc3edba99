"""A model card as a STAC Item of the Machine Learning Model extension (MLM v1.4.0).

:func:`to_stac_mlm` describes what the card says in MLM terms, so that STAC
catalogues and other tools can find and run the model:

* ``mlm:input``: the bands in order (also as STAC 1.1 ``bands`` of the item and of the model asset),
  the input shape ``[batch, bands, tile, tile]`` and data type, and the
  per-band z-score normalisation as ``value_scaling``;
* ``mlm:output``: one score per class and pixel, with the class table as
  ``classification:classes`` (``value`` is the id written to rasters);
* the model file as the asset with the ``mlm:model`` role.

The whole geoseg card rides along under ``geoseg:card``, so nothing is lost.
Pure Python: no torch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .card import ARCHITECTURES, ModelCard

__all__ = ["MLM_EXTENSION", "SAFETENSORS_TYPE", "model_item", "to_stac_mlm"]

MLM_EXTENSION = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
SAFETENSORS_TYPE = "application/octet-stream; application=safetensors"
_DIM_IN = ["batch", "bands", "height", "width"]
_DIM_OUT = ["batch", "channel", "height", "width"]


def _mlm_name(text: str) -> str:
    """A name MLM accepts: a letter first, a letter or digit last, then letters, digits, ``_ . -`` and spaces."""
    name = re.sub(r"[^A-Za-z0-9_.\- ]+", "-", text).strip("_.- ")
    if not name or not name[0].isalpha():
        name = f"model-{name}" if name else "model"
    return name if len(name) >= 3 else f"{name}-model"


def _class_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_") or "class"


def _framework_version() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def to_stac_mlm(
    card: ModelCard,
    *,
    model_href: str,
    item_id: str | None = None,
    when: datetime | None = None,
    checksum_sha256: str | None = None,
    size: int | None = None,
    artifact_type: str = "safetensors.torch.save_file",
    media_type: str = SAFETENSORS_TYPE,
) -> dict[str, Any]:
    """A STAC 1.1.0 Item (MLM v1.4.0) describing the model ``card``, whose file is at ``model_href``.

    ``when`` (default: now) is the item's datetime; with ``checksum_sha256``
    and ``size`` the model asset gets ``file:checksum`` and ``file:size``.
    """
    import pystac

    arch = ARCHITECTURES.get(card.architecture.lower(), card.architecture)
    name = _mlm_name(item_id or f"{card.architecture}-{card.encoder or 'custom'}")
    tile = card.tile_size
    norm = card.normalization
    input_description = (
        f"{len(card.bands)} band(s) of {card.dtype} pixels"
        + (f" at {card.resolution:g} m" if card.resolution else "")
        + ("; invalid pixels (nodata, masks) are left out" if card.nodata == "mask" else "")
    )
    classes = [
        {"value": c.id, "name": _class_name(c.name), "title": c.name, "description": c.name,
         "color_hint": "{:02X}{:02X}{:02X}".format(*c.color)}
        for c in card.classes
    ]
    properties: dict[str, Any] = {
        "description": f"{arch} semantic segmentation model ({card.num_classes} classes) for geoseg",
        "bands": [{"name": b, "data_type": card.dtype} for b in card.bands],
        "mlm:name": name,
        "mlm:architecture": arch,
        "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "PyTorch",
        "mlm:input": [{
            "name": "scene",
            "description": input_description,
            "bands": list(card.bands),
            "input": {"shape": [-1, len(card.bands), tile, tile], "dim_order": _DIM_IN, "data_type": card.dtype},
            "value_scaling": [
                {"type": "z-score", "mean": m, "stddev": s} for m, s in zip(norm.mean, norm.std, strict=True)
            ],
            "resize_type": None,
        }],
        "mlm:output": [{
            "name": "classes",
            "description": "a score per class and pixel; the class of a pixel is the value of its highest score",
            "tasks": ["semantic-segmentation"],
            "result": {"shape": [-1, card.num_classes, tile, tile], "dim_order": _DIM_OUT, "data_type": "float32"},
            "classification:classes": classes,
        }],
        "mlm:hyperparameters": {"encoder": card.encoder, **dict(card.arch_params)},
        "geoseg:card": card.to_dict(),
    }
    version = _framework_version()
    if version:
        properties["mlm:framework_version"] = version
    item = pystac.Item(name.replace(" ", "_"), None, None, when or datetime.now(timezone.utc), properties)
    asset = pystac.Asset(model_href, title="model weights and geoseg card", media_type=media_type,
                         roles=["mlm:model", "mlm:weights", "data"],
                         extra_fields={"mlm:artifact_type": artifact_type, "bands": properties["bands"]})
    item.add_asset("model", asset)
    extensions = [MLM_EXTENSION]
    if checksum_sha256 is not None and size is not None:
        asset.extra_fields.update({"file:checksum": "1220" + checksum_sha256, "file:size": int(size)})
        extensions.append(FILE_EXTENSION)
    out = item.to_dict(include_self_link=False, transform_hrefs=False)
    out["stac_extensions"] = sorted(extensions)
    return out


def model_item(path: str | os.PathLike[str], *, item_href: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The MLM item of a geoseg model file or smp ``save_pretrained`` folder, hrefs relative to ``item_href``.

    The model asset is the weights file (a folder's ``model.safetensors``; its ``config.json`` becomes a
    ``config`` asset).  The datetime is the weights' modification time, so the same file gives the same item.
    """
    from .file import read_card

    path = Path(path)
    card = read_card(path)
    folder = path.is_dir()
    weights = path / "model.safetensors" if folder else path
    base = Path(item_href).resolve().parent if item_href is not None else path.resolve().parent

    def href(target: Path) -> str:
        rel = os.path.relpath(target.resolve(), base).replace(os.sep, "/")
        return rel if rel.startswith("..") else f"./{rel}"

    item = to_stac_mlm(
        card, model_href=href(weights), item_id=path.stem,
        when=datetime.fromtimestamp(weights.stat().st_mtime, tz=timezone.utc).replace(microsecond=0),
        checksum_sha256=_sha256(weights), size=weights.stat().st_size,
        artifact_type="segmentation_models_pytorch.save_pretrained" if folder else "safetensors.torch.save_file",
    )
    if folder:
        item["assets"]["config"] = {"href": href(path / "config.json"), "type": "application/json",
                                    "title": "segmentation-models-pytorch model config", "roles": ["metadata"]}
    return item


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
