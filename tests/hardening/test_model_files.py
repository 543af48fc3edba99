"""Model files and cards of every wrong shape: one ModelError naming the file, never another exception."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from support import hostile as h

from geoseg.classes import classes_from_json
from geoseg.errors import ModelError
from geoseg.model.card import ModelCard
from geoseg.model.file import card_from_bytes, read_card, resolve_model_path


def _with(**changes):
    card = h.shipped_card()
    card.update(changes)
    return card


BAD_CARDS = {
    "version as text": (_with(version="1"), "'version' must be integer"),
    "version below 1": (_with(version=0), "positive integer"),
    "version from the future": (_with(version=99), "upgrade geoseg"),
    "range of three numbers": (_with(resolution_range=[0.1, 0.2, 0.3]), "two numbers"),
    "range low above high": (_with(resolution_range=[0.3, 0.1]), "0 < low <= high"),
    "classes an object": (_with(classes={"0": "background"}), "'classes' must be list"),
    "normalization a list": (_with(normalization=[1, 2, 3]), "'normalization' must be object"),
    "normalization std text": (_with(normalization={"mean": [1, 1, 1], "std": "abc"}), "list of numbers"),
    "normalization std zero": (_with(normalization={"mean": [1, 1, 1], "std": [0, 1, 1]}), "positive"),
    "tile size text": (_with(tile_size="512"), "'tile_size' must be integer"),
    "tile size 10^9": (_with(tile_size=10**9), "8..4096"),
    "bands numbers": (_with(bands=[1, 2, 3]), "band names"),
    "dtype a list": (_with(dtype=["uint8"]), "'dtype' must be text"),
    "arch_params a list": (_with(arch_params=[1]), "'arch_params' must be object"),
    "ignore index huge": (_with(ignore_index=10**20), "ignore_index"),
    "unknown field": (_with(evil=1), "unknown fields"),
    "a list, not an object": ([h.shipped_card()], "JSON object of fields"),
    "resolution NaN": (json.dumps(_with(resolution=float("nan"))), "finite"),
    "infinite class id": (json.dumps(_with()).replace('"id": 1', '"id": Infinity'), "class id inf"),
    "colour out of range": (json.dumps(_with()).replace("[230, 25, 75]", "[1e999, 25, 75]"), "colour"),
    "class id as text": (json.dumps(_with()).replace('"id": 1', '"id": "1"'), "class id '1'"),
    "nested 100000 deep": ("[" * 100_000 + "]" * 100_000, "too deeply"),
    "not JSON": ("{{{", "not valid JSON"),
    "empty": ("", "not valid JSON"),
}


@pytest.mark.parametrize("label", list(BAD_CARDS))
def test_bad_cards_are_one_line_model_errors_naming_the_file(tmp_path, label):
    card, message = BAD_CARDS[label]
    path = h.write_card_only_model(tmp_path / "model.safetensors", card)
    with pytest.raises(ModelError) as info:
        read_card(path)
    text = str(info.value)
    assert message in text and "model.safetensors" in text and "\n" not in text


def test_a_good_card_round_trips():
    card = ModelCard.from_dict(h.shipped_card())
    assert ModelCard.from_json(card.to_json()) == card


def _raw(data: bytes):
    def write(path):
        path.write_bytes(data)
        return path

    return write


BAD_FILES = {
    "random bytes": (lambda p: h.write_random_bytes(p), "not a safetensors model file"),
    "a pickle": (_raw(pickle.dumps({"w": [1.0]})), "not a safetensors model file"),
    "header length 2^60": (_raw((2**60).to_bytes(8, "little") + b"{}"), "header length"),
    "header longer than the file": (_raw((100).to_bytes(8, "little") + b"{}"), "truncated"),
    "header a list": (_raw((2).to_bytes(8, "little") + b"[]"), "not a JSON object"),
    "metadata not text": (lambda p: h.write_safetensors(p, {}, card=None, header_extra={"__metadata__": {"a": 1}}),
                          "__metadata__"),
    "tensor outside the file": (lambda p: h.write_safetensors(p, {}, card=h.shipped_card(), header_extra={
        "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}), "outside the file"),
    "tensor shape and bytes disagree": (lambda p: h.write_safetensors(p, {"w": np.zeros(4, np.float32)},
                                                                      card=h.shipped_card(), header_extra={
        "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}), "does not fill"),
    "no card": (lambda p: h.write_safetensors(p, {"w": np.zeros(2, np.float32)}, card=None), "no geoseg model card"),
    "truncated weights": (h.write_truncated_weights, "truncated"),
}


@pytest.mark.parametrize("label", list(BAD_FILES))
def test_bad_model_files(tmp_path, label):
    make, message = BAD_FILES[label]
    path = tmp_path / "m.safetensors"
    make(path)
    with pytest.raises(ModelError, match=message) as info:
        read_card(path)
    assert "m.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_a_folder_or_a_fifo_is_not_a_model(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(ModelError, match="is a folder"):
        resolve_model_path(tmp_path / "models")
    h.make_fifo(tmp_path / "m.safetensors")
    with pytest.raises(ModelError, match="not a regular file"):
        read_card(tmp_path / "m.safetensors")


def test_weights_that_do_not_fit_the_card(tmp_path):
    from geoseg.model.network import load_model

    path = h.write_mismatched_weights(tmp_path / "m.safetensors")
    read_card(path)  # the header itself is fine
    with pytest.raises(ModelError, match=r"do not fit the unet network.*other shapes \(first: .*save the model again"):
        load_model(path)


def test_card_from_bytes_is_what_read_card_uses():
    from geoseg.model.file import SHIPPED_MODELS

    data = SHIPPED_MODELS["buildings"].read_bytes()
    assert card_from_bytes(data, "buildings") == read_card("buildings")
    with pytest.raises(ModelError, match="'x'"):
        card_from_bytes(data[:10], "x")


@pytest.mark.parametrize("text", ['{"0": "a"}', '[{"id": 1e999, "name": "x"}]', '[{"id": true, "name": "x"}]',
                                  '[{"id": 1.5, "name": "x"}]', '[{"id": 1, "name": 5}]', '[{"id": 1, "name": "x", '
                                  '"color": "red"}]', "[" * 50_000 + "]" * 50_000, "NaN", "", '"abc"', "[1]",
                                  "[" + ",".join(f'"c{i}"' for i in range(300)) + "]",
                                  '[{"id": 0, "name": "a", "1": 2, "x": 3}]'])
def test_class_tables_that_are_not_tables(text):
    with pytest.raises(ModelError):
        classes_from_json(text)
