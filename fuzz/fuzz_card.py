"""Fuzz the model card reader: a safetensors header (JSON with a tensor table) and the card inside it.

Every input must end in a :class:`~geoseg.errors.ModelError` or a card.  The
first byte chooses the target: even, the whole file (``card_from_bytes``); odd,
the card's JSON text alone (``ModelCard.from_json``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import _harness  # noqa: F401  (puts tests/ on the path)

try:
    import atheris

    with atheris.instrument_imports(include=["geoseg"]):
        from geoseg.errors import ModelError
        from geoseg.model.card import ModelCard
        from geoseg.model.file import card_from_bytes
except ImportError:
    from geoseg.errors import ModelError
    from geoseg.model.card import ModelCard
    from geoseg.model.file import card_from_bytes


def check_one(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] % 2 == 0:
            card_from_bytes(data[1:], "fuzzed.safetensors")
        else:
            ModelCard.from_json(data[1:].decode("utf-8", "replace"))
    except ModelError:
        pass


def seeds() -> Iterator[bytes]:
    import numpy as np
    from support import hostile as h

    from geoseg.model.file import SHIPPED_MODELS

    card = h.shipped_card()
    shipped = SHIPPED_MODELS["buildings"].read_bytes()
    length = int.from_bytes(shipped[:8], "little")
    yield b"\0" + shipped[: 8 + length]
    for changes in ({}, {"version": "1"}, {"resolution_range": [0.1, 0.2, 0.3]}, {"parts": []},
                    {"classes": ["a", "b"]}, {"ignore_index": 0}, {"resolution": None, "resolution_range": None}):
        text = json.dumps({**card, **changes})
        yield b"\1" + text.encode()
        header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                  "__metadata__": {"geoseg.card": text}}
        raw = json.dumps(header).encode()
        yield b"\0" + len(raw).to_bytes(8, "little") + raw + np.zeros(2, np.float32).tobytes()


if __name__ == "__main__":
    _harness.main(check_one, seeds)
    sys.exit(0)
