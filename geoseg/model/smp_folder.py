"""segmentation-models-pytorch ``save_pretrained`` folders as geoseg models, and back.

Such a folder holds ``config.json`` (the network's class and init arguments)
and ``model.safetensors`` (the weights); smp and the Hugging Face hub read and
write it.  What a network alone does not say (class names and colours, band
names, normalisation, dtype, tile size, ground resolution, nodata policy)
comes from ``geoseg_card.json`` beside them: a geoseg model card without the
architecture fields, which are taken from ``config.json``.  With both, the
folder is a model wherever geoseg takes one (``geoseg predict --model
folder/``), and :func:`save_smp_folder` writes any smp-built geoseg model as
such a folder, so models travel between the tools.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import TMP_MARKER, check_writable
from ..errors import ModelError
from .card import ARCHITECTURES, ModelCard

if TYPE_CHECKING:
    from .network import Model

__all__ = ["CARD_FILE", "CONFIG_FILE", "WEIGHTS_FILE", "is_smp_folder", "read_folder_card", "save_smp_folder"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "geoseg_card.json"
#: config.json keys that become card fields rather than ``arch_params``.
_STRUCTURAL = {"_model_class", "encoder_name", "encoder_weights", "in_channels", "classes"}
#: Card fields that come from config.json, never from the sidecar.
_FROM_CONFIG = {"architecture", "encoder", "arch_params"}
_MAX_JSON_BYTES = 10 * 1024 * 1024


def is_smp_folder(path: str | os.PathLike[str]) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            raise ValueError(f"larger than {_MAX_JSON_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what} {str(path)!r} is missing") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{what} {str(path)!r} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{what} {str(path)!r} must hold a JSON object")
    return data


def read_folder_card(folder: str | os.PathLike[str]) -> ModelCard:
    """The geoseg card of an smp folder: architecture from ``config.json``, the rest from ``geoseg_card.json``."""
    folder = Path(folder)
    config = _read_json(folder / CONFIG_FILE, "smp model config")
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelError(f"{str(folder)!r} has no {WEIGHTS_FILE}; save the network with save_pretrained")
    if not (folder / CARD_FILE).is_file():
        raise ModelError(
            f"{str(folder)!r} is a segmentation-models-pytorch folder without {CARD_FILE}; add one with the "
            "classes, bands and normalization (geoseg.model.smp_folder.write_card_file) so geoseg knows what "
            "the network expects and produces"
        )
    sidecar = _read_json(folder / CARD_FILE, "geoseg card")
    clash = sorted(_FROM_CONFIG & set(sidecar))
    if clash:
        raise ModelError(f"{CARD_FILE} in {str(folder)!r} sets {clash}, which come from {CONFIG_FILE}; remove them")
    model_class = config.get("_model_class")
    if not isinstance(model_class, str):
        raise ModelError(f"{CONFIG_FILE} in {str(folder)!r} has no _model_class; is it a save_pretrained folder?")
    by_class = {v.lower(): k for k, v in ARCHITECTURES.items()}
    architecture = by_class.get(model_class.lower(), model_class.lower())
    try:
        card = ModelCard.from_dict({
            **sidecar,
            "architecture": architecture,
            "encoder": config.get("encoder_name"),
            "arch_params": {k: v for k, v in config.items() if k not in _STRUCTURAL},
        })
    except ModelError as exc:
        raise ModelError(f"{str(folder / CARD_FILE)!r}: {exc}") from None
    for key, want, what in (("in_channels", len(card.bands), "bands"), ("classes", card.num_classes, "classes")):
        if key in config and config[key] != want:
            raise ModelError(
                f"{str(folder)!r}: {CONFIG_FILE} has {key}={config[key]} but {CARD_FILE} lists {want} {what}"
            )
    return card


def card_file_dict(card: ModelCard) -> dict[str, Any]:
    """A card as ``geoseg_card.json`` holds it: without the fields config.json gives."""
    return {k: v for k, v in card.to_dict().items() if k not in _FROM_CONFIG}


def write_card_file(folder: str | os.PathLike[str], card: ModelCard) -> Path:
    """Write ``geoseg_card.json`` into an smp folder."""
    from ..atomic import atomic_path

    path = Path(folder) / CARD_FILE
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(card_file_dict(card), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def save_smp_folder(model: Model, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a geoseg model built by segmentation-models-pytorch as a ``save_pretrained`` folder with its card.

    The folder is written beside its final name and renamed into place.
    """
    folder = Path(folder)
    network = model.network
    save_pretrained = getattr(network, "save_pretrained", None)
    if not callable(save_pretrained):
        raise ModelError(
            f"the {type(network).__name__} network is not a segmentation-models-pytorch model; "
            "save it with geoseg.save_model instead"
        )
    if folder.exists() and not folder.is_dir():
        raise ModelError(f"{str(folder)!r} exists and is not a folder")
    if folder.exists() and not overwrite:
        check_writable(folder, overwrite=False)  # raises OutputExistsError naming --overwrite
    tmp = folder.with_name(f"{folder.name}{TMP_MARKER}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_pretrained(str(tmp))
        write_card_file(tmp, model.card)
        read_folder_card(tmp)  # what was written reads back as the same model
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
