"""Configuration files: bounded YAML (no alias bombs, no deep nesting), regular files only, errors naming the file."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from support import hostile as h

from geoseg.batch.config import load_batch_config
from geoseg.errors import ConfigError
from geoseg.safety.files import read_capped, read_text_capped, regular_file
from geoseg.safety.limits import MAX_YAML_ALIASES
from geoseg.safety.yaml_loader import load_yaml
from geoseg.training.config import load_config


def _quick(func, *args, seconds: float = 5.0):
    started = time.perf_counter()
    try:
        return func(*args)
    finally:
        assert time.perf_counter() - started < seconds, "took too long"


def test_billion_laughs_is_refused_at_once():
    text = h.billion_laughs()
    assert len(text) < 1000
    with pytest.raises(ConfigError, match="expands to more than 100000 values"):
        _quick(load_yaml, text, "bomb.yaml")


def test_many_aliases_are_refused():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    with pytest.raises(ConfigError, match="aliases"):
        load_yaml(text, "many.yaml")


def test_deep_nesting_is_refused_at_once():
    with pytest.raises(ConfigError, match="levels deep"):
        _quick(load_yaml, h.deep_yaml(), "deep.yaml")
    block = "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 1500))
    with pytest.raises(ConfigError, match="too deeply"):
        _quick(load_yaml, block, "deep.yaml")


def test_an_anchor_holding_itself_is_refused():
    with pytest.raises(ConfigError, match="alias of itself"):
        load_yaml("a: &x [1, *x]\n", "loop.yaml")


def test_ordinary_anchors_and_merges_still_load():
    assert load_yaml("x: &a {k: 1}\ny:\n  <<: *a\n  j: 2\nz: [*a, *a]\n", "ok.yaml") == {
        "x": {"k": 1}, "y": {"k": 1, "j": 2}, "z": [{"k": 1}, {"k": 1}]}
    assert load_yaml("", "empty.yaml") is None


@pytest.mark.parametrize("text", ["!!python/object/apply:os.system ['true']", "a: 2001-13-45", "{", "a: [1, 2"])
def test_unsafe_or_malformed_yaml(text):
    with pytest.raises(ConfigError, match="cfg.yaml"):
        load_yaml(text, "cfg.yaml")


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = h.make_fifo(tmp_path / "config.yaml")
    done = threading.Event()

    def read() -> None:
        with pytest.raises(ConfigError, match="not a regular file"):
            read_text_capped(fifo, "config", 1000)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "reading a FIFO blocked"
    with pytest.raises(ConfigError, match="not a regular file"):
        read_capped("/dev/zero", "config", 1000)
    with pytest.raises(ConfigError, match="is a folder"):
        regular_file(tmp_path, "config", error=ConfigError)


def test_reads_stop_at_their_cap(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2001)
    with pytest.raises(ConfigError, match="larger than"):
        read_capped(big, "list", 2000)
    assert read_capped(big, "list", 2001) == b"x" * 2001
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_text_capped(tmp_path / "latin1.txt", "list", 100)


@pytest.mark.parametrize("loader", [load_batch_config, load_config])
@pytest.mark.parametrize(("text", "message"), [
    (h.billion_laughs(), "expands to more than"),
    (h.deep_yaml(), "levels deep"),
    ("- 1\n- 2\n", "mapping"),
    ("# padding\n" * 200_000, "larger than"),
])
def test_both_config_loaders_are_bounded_and_name_the_file(tmp_path, loader, text, message):
    path = tmp_path / "my_config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        _quick(loader, path)
    assert "my_config.yaml" in str(info.value)


def test_schema_errors_name_the_config_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"scenes": [{"image": "a.tif", "labels": "a.gpkg"}], "classes": ["a", "b"],
                                    "trainer": {"epochz": 1}}))
    with pytest.raises(ConfigError, match=r"train.yaml.*unknown key 'trainer.epochz'"):
        load_config(path)
    batch = tmp_path / "batch.yaml"
    batch.write_text("input: {folder: x}\noutput: out\ncolour: red\n")
    with pytest.raises(ConfigError, match=r"batch.yaml.*unknown key 'colour'"):
        load_batch_config(batch)


def test_an_override_value_is_bounded_too(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"scenes": [{"image": "a.tif", "labels": "a.gpkg"}], "classes": ["a", "b"]}))
    with pytest.raises(ConfigError, match="expands to more than"):
        _quick(lambda: load_config(path, overrides=["tile_size=" + h.billion_laughs(flow=True)]))



def test_a_class_entry_with_keys_of_mixed_types_is_a_config_error():
    """Found by fuzzing: sorting unknown keys of mixed types (1 and "x") raised TypeError."""
    with pytest.raises(ConfigError, match=r"unknown keys \['1', 'x'\]"):
        load_config({"scenes": [{"image": "a.tif", "labels": "a.gpkg"}],
                     "classes": [{"id": 0, "name": "a", 1: 2, "x": 3}, {"id": 1, "name": "b"}]}, base_dir="/x")
