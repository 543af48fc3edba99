"""Model files without torch: where they are, and reading their cards.

A model file is safetensors; its header's metadata holds the card as JSON under
:data:`CARD_KEY`.  Reading a card needs only the header, so the CLI and the
Dask client can check a model before any worker loads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ModelError
from .card import ModelCard

__all__ = ["CARD_KEY", "SHIPPED_MODELS", "DEFAULT_MODEL", "resolve_model_path", "read_card"]

CARD_KEY = "geoseg.card"
_WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Short names of the models shipped inside the package.
SHIPPED_MODELS: dict[str, Path] = {"buildings": _WEIGHTS_DIR / "buildings.safetensors"}
DEFAULT_MODEL = "buildings"


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """Map ``None`` or a shipped short name to its file; check a given path exists."""
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in SHIPPED_MODELS:
        path = SHIPPED_MODELS[model]
        if not path.exists():
            raise ModelError(f"the shipped model {model!r} is missing from this installation ({path}); reinstall geoseg")
        return path
    path = Path(model)
    if not path.exists():
        names = ", ".join(sorted(SHIPPED_MODELS))
        raise ModelError(f"model file {str(path)!r} does not exist; give a .safetensors path or a shipped name ({names})")
    return path


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read only the card of a model file (cheap: the header, not the weights)."""
    path = resolve_model_path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ValueError("file too short")
            size = int.from_bytes(head, "little")
            if not 0 < size < 100_000_000:
                raise ValueError("bad header size")
            header = json.loads(fh.read(size))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{str(path)!r} is not a safetensors model file ({exc}); geoseg never loads pickles") from None
    meta = header.get("__metadata__") or {}
    if CARD_KEY not in meta:
        raise ModelError(f"{str(path)!r} has no geoseg model card in its header; save models with geoseg.save_model")
    return ModelCard.from_json(meta[CARD_KEY])


