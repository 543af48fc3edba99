"""A model card exported as a STAC MLM item, valid against the MLM v1.4.0 schema (offline)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from support.nets import card_for, tiny_unet
from support.stac_validation import validate_stac

from geoseg.model.network import save_model
from geoseg.model.stac_mlm import MLM_EXTENSION, model_item, to_stac_mlm


def test_card_exports_to_a_valid_mlm_item():
    card = card_for(bands=4, classes=3, tile_size=256, architecture="unet", encoder="resnet18", resolution=0.5,
                    arch_params={"encoder_depth": 3})
    item = to_stac_mlm(card, model_href="./model.safetensors", item_id="roofs v2",
                       when=datetime(2026, 1, 2, tzinfo=timezone.utc), checksum_sha256="ab" * 32, size=123)
    checked = validate_stac(item)
    assert MLM_EXTENSION in checked and item["stac_version"] == "1.1.0"
    props = item["properties"]
    assert props["mlm:name"] == "roofs v2" and props["mlm:architecture"] == "Unet"
    assert props["mlm:tasks"] == ["semantic-segmentation"] and props["mlm:framework"] == "PyTorch"
    (inp,) = props["mlm:input"]
    assert inp["bands"] == ["b0", "b1", "b2", "b3"] and [b["name"] for b in props["bands"]] == inp["bands"]
    assert inp["input"] == {"shape": [-1, 4, 256, 256], "dim_order": ["batch", "bands", "height", "width"],
                            "data_type": "uint8"}
    assert inp["value_scaling"] == [{"type": "z-score", "mean": 100.0, "stddev": 50.0}] * 4
    (out,) = props["mlm:output"]
    assert out["result"]["shape"] == [-1, 3, 256, 256]
    assert [(c["value"], c["name"]) for c in out["classification:classes"]] == [(0, "class0"), (1, "class1"),
                                                                                (2, "class2")]
    asset = item["assets"]["model"]
    assert "mlm:model" in asset["roles"] and asset["mlm:artifact_type"] and asset["file:size"] == 123
    assert props["mlm:hyperparameters"] == {"encoder": "resnet18", "encoder_depth": 3}
    assert props["geoseg:card"] == json.loads(card.to_json())


def test_awkward_names_still_validate():
    card = card_for(classes=2).replace(classes=[{"id": 0, "name": "bare soil / rock"}, {"id": 7, "name": "Wasser"}])
    item = to_stac_mlm(card, model_href="m.safetensors", item_id="_2nd try!",
                       when=datetime(2026, 1, 1, tzinfo=timezone.utc))
    validate_stac(item)
    classes = item["properties"]["mlm:output"][0]["classification:classes"]
    assert [(c["value"], c["name"], c["title"]) for c in classes] == [(0, "bare_soil_rock", "bare soil / rock"),
                                                                     (7, "Wasser", "Wasser")]


def test_model_file_item_is_reproducible(tmp_path):
    path = save_model(tiny_unet(), tmp_path / "roofs.safetensors")
    first = model_item(path)
    validate_stac(first)
    assert first["assets"]["model"]["href"] == "./roofs.safetensors" and first["id"] == "roofs"
    assert model_item(path) == first
    nested = model_item(path, item_href=tmp_path / "catalog" / "roofs.json")
    assert nested["assets"]["model"]["href"] == "../roofs.safetensors"


@pytest.mark.parametrize("key", ["mlm:input", "mlm:output"])
def test_the_offline_validator_catches_a_broken_item(key):
    item = to_stac_mlm(card_for(), model_href="m.safetensors", when=datetime(2026, 1, 1, tzinfo=timezone.utc))
    del item["properties"][key]
    with pytest.raises(AssertionError, match="mlm"):
        validate_stac(item)


def test_model_commands_show_the_card_and_write_a_valid_item(tmp_path):
    from click.testing import CliRunner

    from geoseg.cli import main
    from geoseg.model.card import ModelCard

    model = tmp_path / "roofs.safetensors"
    save_model(tiny_unet(bands=3, classes=2), model)
    runner = CliRunner()
    shown = runner.invoke(main, ["-q", "model", "show", str(model)])
    assert shown.exit_code == 0, shown.output
    assert ModelCard.from_dict(json.loads(shown.output)).class_ids == (0, 1)

    out = tmp_path / "catalog" / "roofs.json"
    out.parent.mkdir()
    made = runner.invoke(main, ["-q", "model", "stac", str(model), "--out", str(out)])
    assert made.exit_code == 0, made.output
    item = json.loads(out.read_text())
    assert MLM_EXTENSION in validate_stac(item)
    assert item["assets"]["model"]["href"] == "../roofs.safetensors"  # relative to the item, so the pair can move
    again = runner.invoke(main, ["-q", "model", "stac", str(model), "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    onto_model = runner.invoke(main, ["-q", "model", "stac", str(model), "--out", str(model), "--overwrite"])
    assert onto_model.exit_code == 2 and model.stat().st_size > 1000  # the model is an input: never overwritten
    missing = runner.invoke(main, ["-q", "model", "show", str(tmp_path / "none.safetensors")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["catalog", "roofs.json", "roofs.safetensors"]
