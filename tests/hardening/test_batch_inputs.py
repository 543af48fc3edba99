"""Batch inputs stay inside the archive; lists and catalogs are capped regular files; failures leave nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from support import hostile as h

from geoseg.batch.config import InputConfig
from geoseg.batch.inputs import discover
from geoseg.batch.manifest import Manifest, check_manifest_path
from geoseg.batch.stac_input import read_stac_catalog
from geoseg.batch.tasks import _snapshot, _undo
from geoseg.errors import ConfigError


def _archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    folder.mkdir()
    h.write_scene(folder / "inside.tif", size=32)
    h.write_scene(tmp_path / "outside.tif", size=32)
    return folder


def _errors(sources) -> dict[str, str | None]:
    return {Path(s.path).name: s.error for s in sources}


def test_a_list_naming_files_outside_the_archive(tmp_path):
    archive = _archive(tmp_path)
    (archive / "link.tif").symlink_to(tmp_path / "outside.tif")
    h.make_fifo(archive / "fifo.tif")
    (archive / "scenes.txt").write_text(
        "inside.tif\n/etc/passwd\n../outside.tif\nlink.tif\nfifo.tif\n/vsicurl/http://127.0.0.1:9/x.tif\n")
    found = _errors(discover(InputConfig(list=archive / "scenes.txt")))
    assert found["inside.tif"] is None
    for name in ("passwd", "outside.tif", "link.tif", "x.tif"):
        assert "lies outside the archive" in found[name] and "allow_outside" in found[name], name
    assert "not a regular file" in found["fifo.tif"]
    allowed = _errors(discover(InputConfig(list=archive / "scenes.txt", allow_outside=True)))
    assert allowed["outside.tif"] is None and allowed["link.tif"] is None


def test_a_folder_with_a_link_out_of_it(tmp_path):
    archive = _archive(tmp_path)
    (archive / "link.tif").symlink_to(tmp_path / "outside.tif")
    found = _errors(discover(InputConfig(folder=archive)))
    assert found["inside.tif"] is None and "outside the archive" in found["link.tif"]


def test_inputs_inside_the_output_root_fail(tmp_path):
    archive = _archive(tmp_path)
    (archive / "out").mkdir()
    h.write_scene(archive / "out" / "landcover.tif", size=32)
    (archive / "scenes.txt").write_text("inside.tif\nout/landcover.tif\n")
    found = _errors(discover(InputConfig(list=archive / "scenes.txt"), exclude=archive / "out"))
    assert "inside the output root" in found["landcover.tif"] and found["inside.tif"] is None


@pytest.mark.parametrize("kind", ["list", "stac"])
def test_special_or_huge_list_and_catalog_files(tmp_path, kind):
    fifo = h.make_fifo(tmp_path / "input.txt")
    result: list[BaseException] = []

    def run() -> None:
        try:
            discover(InputConfig(**{kind: fifo}))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert result and isinstance(result[0], ConfigError) and "not a regular file" in str(result[0])
    with pytest.raises(ConfigError, match="not a regular file"):
        discover(InputConfig(**{kind: Path("/dev/zero")}))
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (17 * 2**20))
    with pytest.raises(ConfigError, match="larger than"):
        discover(InputConfig(**{kind: big}))


def test_stac_confined_to_the_catalog_folder(tmp_path):
    archive = _archive(tmp_path)
    catalog = h.stac_catalog(archive, {
        "good": "./inside.tif", "passwd": "/etc/passwd", "up": "../outside.tif", "remote": "https://example.com/x.tif",
        "vsi": "/vsicurl/http://127.0.0.1:9/x.tif", "ipv6": "http://[::1",
    }, links=("../elsewhere/catalog.json", "https://example.com/catalog.json"))
    scenes = {s.item_id: s for s in read_stac_catalog(catalog)}
    assert scenes["good"].error is None and scenes["good"].href == str(archive / "inside.tif")
    for item in ("passwd", "up", "vsi"):
        assert "outside the archive" in scenes[item].error, item
    assert "not a local file" in scenes["remote"].error and "not a local file" in scenes["ipv6"].error
    assert "outside the archive" in scenes["catalog"].error  # the child link out of the archive
    h.stac_catalog(tmp_path / "elsewhere", {})
    relaxed = {s.item_id: s for s in read_stac_catalog(catalog, allow_outside=True)}
    assert relaxed["up"].error is None


@pytest.mark.parametrize("doc", [
    {"type": "Catalog", "links": "x"},
    {"type": "Catalog", "links": [1, None, {"rel": "item", "href": 5}, {"rel": "item"}]},
    {"type": "FeatureCollection", "features": [1, "x", {"id": 3, "assets": []}, {"assets": {"a": 1}}]},
    {"type": "Feature", "id": ["x"], "assets": {"image": {"href": ["a.tif"], "type": "image/tiff"}}},
    {"type": "Feature", "assets": {"image": {"href": "a\0b.tif", "type": "image/tiff"}}, "properties": []},
])
def test_stac_values_of_the_wrong_type_never_raise_anything_else(tmp_path, doc):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(doc))
    for scene in read_stac_catalog(path):
        assert scene.error is not None


@pytest.mark.parametrize(("text", "message"), [("[" * 100_000 + "]" * 100_000, "too deeply"), ("{", "not valid JSON"),
                                               ('{"type": "Thing"}', "STAC type"), ("[]", "not a STAC object")])
def test_stac_files_that_are_not_catalogs(tmp_path, text, message):
    path = tmp_path / "catalog.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_stac_catalog(path)


def test_a_manifest_that_is_something_else(tmp_path):
    scene = h.write_scene(tmp_path / "scene.tif", size=32)
    before = scene.read_bytes()
    with pytest.raises(ConfigError, match="not a geoseg manifest"):
        Manifest(scene)
    assert scene.read_bytes() == before
    with pytest.raises(ConfigError, match="not a regular file"):
        check_manifest_path(h.make_fifo(tmp_path / "m.sqlite"))
    check_manifest_path(tmp_path / "new.sqlite")


def test_a_failed_attempt_removes_what_it_wrote(tmp_path):
    folder = tmp_path / "scene"
    assert _snapshot(folder) is None
    folder.mkdir()
    (folder / "landcover.tif").write_bytes(b"half")
    _undo(folder, None)
    assert not folder.exists()

    folder.mkdir()
    (folder / "item.json").write_text("{}")  # from an earlier, finished run
    before = _snapshot(folder)
    (folder / "landcover.tif").write_bytes(b"new")
    (folder / "item.json").write_text('{"changed": true}')
    _undo(folder, before)
    assert sorted(p.name for p in folder.iterdir()) == []  # the changed item is this attempt's too

    folder.mkdir(exist_ok=True)
    (folder / "keep.json").write_text("{}")
    before = _snapshot(folder)
    (folder / "new.gpkg").write_bytes(b"x")
    _undo(folder, before)
    assert [p.name for p in folder.iterdir()] == ["keep.json"]


def test_batch_config_errors_found_while_planning_leave_no_output_root(tmp_path):
    from geoseg.batch import run_batch

    config = tmp_path / "batch.yaml"
    config.write_text(yaml.safe_dump({"input": {"list": "/dev/zero"}, "output": "out", "model": "buildings"}))
    with pytest.raises(ConfigError, match="not a regular file"):
        run_batch(config)
    assert not (tmp_path / "out").exists()
