"""Training configs: strict schema, overrides, path resolution, shipped examples, and clear errors from train()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import geoseg
from geoseg.cli import main
from geoseg.errors import ConfigError, InputError, LabelError
from geoseg.model.card import ModelCard
from geoseg.model.network import create_network
from geoseg.training.config import TrainConfig, apply_overrides, expand_env, load_config

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "scenes": [{"image": "img.tif", "labels": "labels.gpkg", "fill": 0}],
    "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "building"}],
}


def write_config(folder: Path, data: dict, name: str = "train.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_minimal_config_gets_defaults_and_paths_relative_to_the_config(tmp_path):
    sub = tmp_path / "configs"
    sub.mkdir()
    cfg = load_config(write_config(sub, MINIMAL))
    assert isinstance(cfg, TrainConfig) and isinstance(cfg, geoseg.TrainConfig)
    assert cfg.scenes[0].image == (sub / "img.tif").resolve()
    assert cfg.model.architecture == "unet" and cfg.sampler.kind == "balanced"
    assert [c.name for c in cfg.classes] == ["background", "building"]
    assert geoseg.load_config is load_config


def test_unknown_keys_are_named_with_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.epoch'.*valid keys in trainer: epochs, batch_size"):
        load_config({**MINIMAL, "trainer": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'sampel'.*valid keys: scenes, classes"):
        load_config({**MINIMAL, "sampel": {}})
    with pytest.raises(ConfigError, match=r"unknown key 'scenes\[0\].lables'"):
        load_config({**MINIMAL, "scenes": [{"image": "a.tif", "lables": "b.gpkg"}]})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trainer": {"epochs": "ten"}}, "trainer.epochs must be an integer"),
        ({"sampler": {"kind": "stratified"}}, "sampler.kind is 'stratified'; use one of 'balanced', 'uniform'"),
        ({"validation": {"fraction": 1.5}}, "validation.fraction must be in"),
        ({"tile_size": 100}, "tile_size must be a multiple of 16"),
        ({"ignore_id": 1}, "ignore_id 1 is also a class id"),
        ({"classes": [{"id": 0, "name": "a"}, {"id": 0, "name": "b"}]}, "class ids must be unique"),
        ({"loss": [{"kind": "dice", "class_weights": [1, 2]}]}, "class_weights apply to the ce and focal"),
        ({"loss": [{"kind": "ce", "class_weights": [1, 2, 3]}]}, "3 class_weights for 2 classes"),
        ({"scenes": []}, "at least one training scene"),
        ({"scenes": [{"image": "a.tif"}]}, "missing the required key 'labels'"),
    ],
)
def test_bad_values_are_clear_errors(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config({**MINIMAL, **change})


def test_overrides_are_yaml_scalars():
    data = apply_overrides(MINIMAL, ["trainer.epochs=3", "sampler.kind=uniform", "scenes.0.fill=1",
                                     "augment.rare_classes=[building]", "model.arch_params.decoder_attention_type=scse",
                                     "optimizer.lr=2e-4"])
    cfg = load_config(data)
    assert cfg.trainer.epochs == 3 and cfg.sampler.kind == "uniform" and cfg.scenes[0].fill == 1
    assert cfg.augment.rare_classes == ("building",)
    assert cfg.model.arch_params == {"decoder_attention_type": "scse"}
    assert cfg.optimizer.lr == pytest.approx(2e-4)
    assert MINIMAL["scenes"][0]["fill"] == 0, "overrides must not change the input"
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(MINIMAL, ["trainer.epochs"])
    with pytest.raises(ConfigError, match="list position"):
        apply_overrides(MINIMAL, ["scenes.3.fill=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.epoch'"):
        load_config(MINIMAL, overrides=["trainer.epoch=3"])


def test_data_root_and_environment_variables(tmp_path, monkeypatch):
    sub = tmp_path / "repo" / "configs"
    sub.mkdir(parents=True)
    data = {**MINIMAL, "data_root": "${GEOSEG_TEST_DATA:-../../data}"}
    cfg = load_config(write_config(sub, data))
    assert cfg.data_root == (tmp_path / "data").resolve()
    assert cfg.scenes[0].image == (tmp_path / "data" / "img.tif").resolve()
    monkeypatch.setenv("GEOSEG_TEST_DATA", str(tmp_path / "elsewhere"))
    assert load_config(write_config(sub, data)).scenes[0].labels == (tmp_path / "elsewhere" / "labels.gpkg").resolve()
    with pytest.raises(ConfigError, match="GEOSEG_UNSET_VARIABLE.*not set"):
        expand_env("${GEOSEG_UNSET_VARIABLE}/x", {})
    assert expand_env("${A}/b/${B:-c}", {"A": "/a"}) == "/a/b/c"


def test_missing_or_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("scenes: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")


@pytest.mark.parametrize("name", ["buildings", "massachusetts_buildings", "new_brunswick"])
def test_shipped_configs_load_and_point_at_the_data(name, shared_data):
    cfg = load_config(REPO / "configs" / "train" / f"{name}.yaml", overrides=[f"data_root={shared_data}"])
    for scene in cfg.scenes:
        assert scene.image.is_file() and scene.labels.is_file()


@pytest.mark.parametrize(
    "architecture, params",
    [("deeplabv3plus", {}), ("unet", {"decoder_attention_type": "scse"}), ("segformer", {})],
)
def test_architectures_build_with_random_weights(architecture, params):
    card = ModelCard(classes=["a", "b", "c"], bands=["r", "g", "b"], normalization={"mean": [0] * 3, "std": [1] * 3},
                     architecture=architecture, encoder="resnet18", arch_params=params)
    net = create_network(card).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    if params:
        assert any("SCSE" in type(m).__name__ for m in net.modules())


# ------------------------------------------------------------------ errors from train() itself


@pytest.fixture
def scene_folder(tmp_path, make_raster):
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    make_raster(
        "img.tif", rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), transform=from_origin(500000, 4000000, 1, 1)
    )
    return tmp_path


def test_train_reports_a_missing_image(scene_folder):
    cfg = {**MINIMAL, "scenes": [{"image": "missing.tif", "labels": "labels.gpkg", "fill": 0}]}
    with pytest.raises(InputError, match="missing.tif.*does not exist"):
        geoseg.train(load_config(cfg, base_dir=scene_folder), scene_folder / "m.safetensors")
    assert not (scene_folder / "m.safetensors").exists()


def test_train_reports_labels_that_miss_the_image(scene_folder):
    import geopandas as gpd
    from shapely.geometry import box

    labels = gpd.GeoDataFrame({"class_id": [1]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32633")
    labels.to_file(scene_folder / "labels.gpkg")
    with pytest.raises(LabelError, match="overlap the image"):
        geoseg.train(load_config(MINIMAL, base_dir=scene_folder), scene_folder / "m.safetensors")


def test_train_reports_label_raster_values_outside_the_scheme(scene_folder, make_raster):
    from rasterio.transform import from_origin

    labels = np.zeros((64, 64), np.uint8)
    labels[:5, :5] = 7
    make_raster("labels.tif", labels, transform=from_origin(500000, 4000000, 1, 1))
    cfg = {**MINIMAL, "scenes": [{"image": "img.tif", "labels": "labels.tif"}], "tile_size": 32,
           "cluster": {"workers": 1}}
    with pytest.raises(LabelError, match=r"7 \(25 px\)"):
        geoseg.train(load_config(cfg, base_dir=scene_folder), scene_folder / "m.safetensors")


def test_train_refuses_to_overwrite_and_checks_the_suffix(scene_folder):
    (scene_folder / "m.safetensors").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        geoseg.train(load_config(MINIMAL, base_dir=scene_folder), scene_folder / "m.safetensors")
    with pytest.raises(ConfigError, match=".safetensors"):
        geoseg.train(load_config(MINIMAL, base_dir=scene_folder), scene_folder / "m.pt")
    with pytest.raises(ConfigError, match="nothing to resume"):
        geoseg.train(load_config(MINIMAL, base_dir=scene_folder), scene_folder / "n.safetensors", resume=True)


def test_cli_config_errors_exit_2_with_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main, ["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "m.safetensors")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
    path = write_config(tmp_path, {**MINIMAL, "trainr": {}})
    result = runner.invoke(main, ["train", "-c", str(path), "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2 and "unknown key 'trainr'" in result.output
    result = runner.invoke(main, ["train", "-c", str(path), "-o", str(tmp_path / "m.safetensors"), "--set", "trainr"])
    assert result.exit_code == 2 and "key.path=value" in result.output
    result = runner.invoke(main, ["train", "--help"])
    assert result.exit_code == 0 and "--resume" in result.output and "--set" in result.output
    assert runner.invoke(main, ["train"]).exit_code == 2
