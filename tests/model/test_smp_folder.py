"""segmentation-models-pytorch save_pretrained folders are geoseg models, and geoseg models become such folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.nets import tiny_unet

from geoseg.errors import ModelError
from geoseg.model.file import read_card
from geoseg.model.network import load_model
from geoseg.model.smp_folder import CARD_FILE, card_file_dict, save_smp_folder, write_card_file
from geoseg.model.stac_mlm import model_item


def same_outputs(a, b) -> bool:
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32))
    with torch.inference_mode():
        return torch.allclose(a.network(x), b.network(x))


def test_a_plain_smp_folder_with_a_card_loads(tmp_path):
    import segmentation_models_pytorch as smp

    model = tiny_unet()
    net = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=2, encoder_depth=3,
                   decoder_channels=[16, 8, 4])
    net.load_state_dict(model.network.state_dict())
    net.save_pretrained(str(tmp_path / "m"))  # written by smp itself
    with pytest.raises(ModelError, match=CARD_FILE):
        read_card(tmp_path / "m")
    write_card_file(tmp_path / "m", model.card)
    card = read_card(tmp_path / "m")
    assert card.architecture == "unet" and card.encoder == "resnet18" and card.rebuildable
    assert card.arch_params["decoder_channels"] == [16, 8, 4] and card.classes == model.card.classes
    loaded = load_model(tmp_path / "m")
    assert same_outputs(loaded, model)


def test_round_trip_through_a_folder(tmp_path):
    model = tiny_unet(seed=3)
    folder = save_smp_folder(model, tmp_path / "exported")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", CARD_FILE}
    assert same_outputs(load_model(folder), model)
    with pytest.raises(FileExistsError):
        save_smp_folder(model, folder)
    save_smp_folder(tiny_unet(seed=4), folder, overwrite=True)
    assert not same_outputs(load_model(folder), model)
    item = model_item(folder)
    assert item["assets"]["model"]["href"] == "./exported/model.safetensors"
    assert item["assets"]["config"]["href"] == "./exported/config.json"


def test_card_and_config_must_agree(tmp_path):
    folder = save_smp_folder(tiny_unet(), tmp_path / "m")
    data = card_file_dict(read_card(folder))
    data["bands"] = ["red", "green"]
    data["normalization"] = {"mean": [0, 0], "std": [1, 1]}
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelError, match="in_channels=3 but geoseg_card.json lists 2 bands"):
        read_card(folder)
    (folder / CARD_FILE).write_text(json.dumps({**card_file_dict(tiny_unet().card), "encoder": "resnet50"}))
    with pytest.raises(ModelError, match="come from config.json"):
        read_card(folder)


def test_a_folder_without_config_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="without config.json"):
        read_card(tmp_path / "empty")
