"""geoseg batch building blocks: config schema, safe scene ids, keys, manifest and lock, STAC items and catalogs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.batch import BatchLockedError
from geoseg.batch.config import BatchConfig, load_batch_config
from geoseg.batch.inputs import discover
from geoseg.batch.keys import SAMPLE_BYTES, fingerprint, scene_key
from geoseg.batch.layout import assign_scene_ids, remove_stale_temporaries, safe_name, scene_dir
from geoseg.batch.manifest import Manifest, OutputRecord, RunLock
from geoseg.batch.stac import read_stac_catalog, scene_item, stac_datetime
from geoseg.batch.tasks import classify_error
from geoseg.errors import ConfigError, InputError, ModelError

SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
MINIMAL = {"input": {"folder": "scenes"}, "model": "models/m.safetensors", "output": "out"}


# -- config -----------------------------------------------------------------------------------


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    cfg = load_batch_config(write_yaml(tmp_path / "etc" / "b.yaml", """
input: {folder: ../scenes, glob: "**/*.tif"}
model: ../models/m.safetensors
steps:
  predict: {overlap: 32, tile_size: 256}
  vectorize: {classes: [building, 3], min_area: 10}
output: ../out
"""))
    monkeypatch.chdir("/")
    assert cfg.input.folder == tmp_path / "scenes"
    assert cfg.output == tmp_path / "out"
    assert cfg.manifest_path == cfg.output / "manifest.sqlite"
    assert cfg.model == str(tmp_path / "models" / "m.safetensors")
    assert cfg.steps.predict.overlap == 32 and cfg.steps.predict.batch_size == 8
    assert cfg.steps.vectorize.classes == ("building", 3)
    assert cfg.steps.vectorize.min_area == 10.0 and isinstance(cfg.steps.vectorize.min_area, float)


def test_shipped_model_name_is_not_a_path(tmp_path):
    cfg = BatchConfig.from_dict({**MINIMAL, "model": "buildings"}, base_dir=tmp_path)
    assert cfg.model == "buildings"


@pytest.mark.parametrize("text, message", [
    ("input: {folder: s}\noutput: o\nmodel: m.safetensors\nconcurency: 2\n", "unknown key 'concurency'"),
    ("input: {folder: s, globb: x}\noutput: o\n", "unknown key 'input.globb'"),
    ("input: {folder: s}\noutput: o\nsteps: {predict: {overlap: -1}}\n", "overlap must be >= 0"),
    ("input: {folder: s}\noutput: o\nsteps: {predict: {overlap: '64'}}\n", "steps.predict.overlap must be an integer"),
    ("input: {folder: s}\noutput: o\nconcurrency: true\n", "concurrency must be an integer"),
    ("input: {folder: s}\noutput: o\nsteps: {vectorize: {min_area: 3}}\n", "classes must name at least one class"),
    ("input: {folder: s}\noutput: o\nsteps: {unknown_step: {}}\n", "unknown key 'steps.unknown_step'"),
    ("input: {folder: s, list: l.txt}\noutput: o\n", "exactly one of folder, list, stac"),
    ("input: {folder: s}\n", "missing the required key 'output'"),
    ("input: {folder: s, glob: ../*.tif}\noutput: o\n", "relative pattern"),
    ("- a\n- b\n", "must hold a mapping"),
    ("input: [\n", "not valid YAML"),
    ("input: {folder: s}\noutput: o\nsteps: {predict: {device: tpu}}\n", "device 'tpu'"),
])
def test_config_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_batch_config(write_yaml(tmp_path / "b.yaml", text))


def test_steps_hash_ignores_batch_size_but_not_overlap(tmp_path):
    base = BatchConfig.from_dict(MINIMAL, base_dir=tmp_path)
    same = BatchConfig.from_dict({**MINIMAL, "steps": {"predict": {"batch_size": 2}}}, base_dir=tmp_path)
    other = BatchConfig.from_dict({**MINIMAL, "steps": {"predict": {"overlap": 8}}}, base_dir=tmp_path)
    vec = BatchConfig.from_dict({**MINIMAL, "steps": {"vectorize": {"classes": ["building"]}}}, base_dir=tmp_path)
    assert base.steps_hash() == same.steps_hash()
    assert len({base.steps_hash(), other.steps_hash(), vec.steps_hash()}) == 3


def test_areas_left_to_the_model_hash_as_the_generic_defaults(tmp_path):
    """What a model recommends is in its digest, part of every key: steps without areas keep the keys they had
    when the defaults were 4 and 1 m²; other areas change them."""

    def steps(**vec):
        raw = {**MINIMAL, "steps": {"vectorize": {"classes": ["building"], **vec}}}
        return BatchConfig.from_dict(raw, base_dir=tmp_path).steps_hash()

    assert steps() == steps(min_area=4.0, min_seed_area=1.0)
    assert len({steps(), steps(min_area=20.0), steps(min_seed_area=4.0)}) == 3


def test_shipped_example_config_loads():
    cfg = load_batch_config(Path(__file__).parents[2] / "configs" / "batch" / "nightly.yaml")
    assert cfg.steps.vectorize is not None and cfg.input.folder is not None


# -- scene ids and layout ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["../../etc/x.tif", "/etc/passwd", "..", ".", "", ".hidden", "-rf", "a/b\\c",
                                 "Zürich Ost", "日本語", "x\x00y", "logs", "manifest.sqlite", "a" * 300,
                                 "name.geoseg-tmp-123"])
def test_hostile_names_become_safe_folders_inside_the_root(tmp_path, raw):
    name = safe_name(raw)
    assert SAFE.match(name) and len(name) <= 100
    path = scene_dir(tmp_path, name)
    assert path.parent == tmp_path.resolve()


def test_safe_names_keep_plain_names_and_mark_changed_ones():
    assert safe_name("S2A_20200518_T31.tif") == "S2A_20200518_T31.tif"
    assert safe_name("Zürich").startswith("Zurich-")
    assert safe_name("a b") != safe_name("a_b") and safe_name("a_b") == "a_b"


@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=20, unique=True))
@settings(max_examples=200, deadline=None)
def test_assigned_ids_are_safe_and_unique(raws):
    sources = {f"/archive/{i}.tif": raw for i, raw in enumerate(raws)}
    ids = assign_scene_ids(sources, {})
    assert len({v.lower() for v in ids.values()}) == len(sources)
    assert all(SAFE.match(v) and v.lower() not in ("logs", "manifest.sqlite") for v in ids.values())


def test_ids_are_kept_once_given_and_collisions_get_a_hash():
    first = assign_scene_ids({"/a/x.tif": "x"}, {})
    assert first == {"/a/x.tif": "x"}
    both = assign_scene_ids({"/a/x.tif": "x", "/b/x.tif": "x", "/c/X.tif": "X"}, first)
    assert both["/a/x.tif"] == "x"
    assert both["/b/x.tif"].startswith("x-") and both["/c/X.tif"].startswith("X-")
    assert len({v.lower() for v in both.values()}) == 3


def test_scene_dir_refuses_unsafe_ids_and_links_out_of_the_root(tmp_path):
    for bad in ["../x", "/abs", ".hidden", "a/b", "logs", ""]:
        with pytest.raises(InputError):
            scene_dir(tmp_path, bad)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside)
    with pytest.raises(InputError, match="outside the output root"):
        scene_dir(root, "linked")


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / "s").mkdir()
    stale = tmp_path / "s" / "landcover.geoseg-tmp-0123abcd.tif"
    stale.write_bytes(b"half")
    keep = tmp_path / "s" / "landcover.tif"
    keep.write_bytes(b"whole")
    assert remove_stale_temporaries(tmp_path) == 1
    assert not stale.exists() and keep.exists()


# -- keys -------------------------------------------------------------------------------------


class DictCache:
    def __init__(self):
        self.data, self.reads = {}, 0

    def cached_digest(self, path, size, mtime_ns, method):
        hit = self.data.get(path)
        if hit and hit.size == size and hit.mtime_ns == mtime_ns and hit.digest.startswith(method + ":"):
            return hit.digest
        self.reads += 1
        return None

    def store_digest(self, path, fp):
        self.data[path] = fp


def test_fingerprint_survives_touch_and_sees_content(tmp_path):
    f = tmp_path / "a.tif"
    f.write_bytes(b"x" * 1000)
    cache = DictCache()
    first = fingerprint(f, cache=cache)
    assert fingerprint(f, cache=cache).digest == first.digest and cache.reads == 1  # stat only
    os.utime(f, ns=(first.mtime_ns + 10**9, first.mtime_ns + 10**9))
    touched = fingerprint(f, cache=cache)
    assert touched.digest == first.digest and touched.mtime_ns != first.mtime_ns and cache.reads == 2
    f.write_bytes(b"y" * 1000)
    assert fingerprint(f, cache=cache).digest != first.digest


def test_sampled_fingerprint_reads_ends_and_size(tmp_path):
    f = tmp_path / "big.tif"
    data = bytearray(os.urandom(3 * SAMPLE_BYTES))
    f.write_bytes(data)
    base = fingerprint(f, mode="sampled").digest
    assert base.startswith("sampled-sha256:") and fingerprint(f, mode="full").digest.startswith("sha256:")
    data[-1] ^= 1
    f.write_bytes(data)
    assert fingerprint(f, mode="sampled").digest != base
    data[-1] ^= 1
    data[SAMPLE_BYTES + 10] ^= 1  # the middle is not sampled: documented
    f.write_bytes(data)
    assert fingerprint(f, mode="sampled").digest == base
    assert fingerprint(f, mode="full").digest != fingerprint(f, mode="sampled").digest


def test_scene_key_depends_on_every_part():
    parts = {"input_digest": "a", "model_digest": "b", "steps_digest": "c", "version": "1"}
    keys = {scene_key(**parts)} | {scene_key(**{**parts, k: "z"}) for k in parts}
    assert len(keys) == 5


# -- manifest and lock --------------------------------------------------------------------------


def test_manifest_is_wal_and_tracks_a_scene(tmp_path):
    path = tmp_path / "m.sqlite"
    parts = {"input": "i", "model": "m", "steps": "s", "geoseg": "v"}
    with Manifest(path) as m:
        m.set_pending("a", "/x/a.tif", key="k1", parts=parts)
        m.set_running("a", "run1")
        assert m.scene("a").attempts == 1 and m.scene("a").status == "running"
        rec = OutputRecord("a/landcover.tif", "00" * 32, 10, 123)
        m.set_done("a", {"landcover": rec}, {"total": 1.5})
        m.set_pending("b", "/x/b.tif", key="k2", parts=parts)
        m.set_running("b", "run1")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Manifest(path) as m:  # a new run after a crash
        assert m.recover_interrupted() == 1
        b = m.scene("b")
        assert b.status == "pending" and b.reason == "interrupted" and b.attempts == 1
        m.set_pending("b", "/x/b.tif", key="k3", parts=parts)
        assert m.scene("b").attempts == 0  # a new key starts over
        m.start_run("run2", planned=1, log=None)
        m.set_failed("b", "/x/b.tif", kind="permanent", reason="InputError: bad", run_id="run2")
        m.finish_run("run2", outcome="finished")
        assert m.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 1}
        assert {k: m.last_run()[k] for k in ("run_id", "done", "failed", "outcome")} == \
            {"run_id": "run2", "done": 0, "failed": 1, "outcome": "finished"}
        assert m.scene("a").outputs["landcover"] == rec
    with Manifest(path, readonly=True) as ro:
        assert ro.scene("b").reason == "InputError: bad"
        with pytest.raises(sqlite3.OperationalError):
            ro._db.execute("DELETE FROM scenes")


def test_second_lock_on_the_same_manifest_fails_clearly(tmp_path):
    path = tmp_path / "m.sqlite"
    with RunLock(path), pytest.raises(BatchLockedError, match=f"pid {os.getpid()}"):
        RunLock(path).acquire()
    lock = RunLock(path)
    lock.acquire()  # the first lock was released on leaving its block
    lock.release()


# -- STAC -------------------------------------------------------------------------------------


def test_item_is_stac_in_wgs84_with_relative_assets(make_raster):
    from rasterio.transform import from_origin

    from geoseg.batch.stac import Asset

    item = scene_item(
        scene_id="s1", crs_wkt='EPSG:32633', transform=tuple(from_origin(500000, 4000000, 10, 10))[:6],
        width=100, height=50, when=stac_datetime({"TIFFTAG_DATETIME": "2020:05:18 10:22:01"}, 0),
        assets={"landcover": Asset("./landcover.tif", "image/tiff", "t", ("data",), "ab" * 32, 5)},
        properties={"geoseg:key": "k"},
    )
    assert item["stac_version"] == "1.1.0" and item["type"] == "Feature"
    assert item["properties"]["datetime"] == "2020-05-18T10:22:01Z" and item["properties"]["proj:code"] == "EPSG:32633"
    lon0, lat0, lon1, lat1 = item["bbox"]
    assert 14 < lon0 < lon1 < 15.1 and 36 < lat0 < lat1 < 36.2
    ring = item["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) > 5
    assert item["assets"]["landcover"]["href"] == "./landcover.tif"
    assert item["assets"]["landcover"]["file:checksum"] == "1220" + "ab" * 32


def test_unknown_datetime_is_an_interval():
    props = stac_datetime({}, 1_600_000_000 * 10**9)
    assert props == {"datetime": None, "start_datetime": "1970-01-01T00:00:00Z", "end_datetime": "2020-09-13T12:26:40Z"}


def test_stac_catalog_input(tmp_path):
    (tmp_path / "items").mkdir()
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.tif").write_bytes(b"")

    def item(item_id, assets, props=None):
        return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "properties": props or {"datetime": None},
                "geometry": None, "links": [], "assets": assets}

    docs = {
        "items/one.json": item("../../etc/x", {"visual": {"href": "../img/a.tif",
                                                          "type": "image/tiff; application=geotiff",
                                                          "roles": ["data"]}}, {"datetime": "2021-01-01T00:00:00Z"}),
        "items/two.json": item("remote", {"data": {"href": "https://example.com/b.tif", "type": "image/tiff"}}),
        "items/three.json": item("nogeotiff", {"meta": {"href": "x.xml", "type": "application/xml"}}),
    }
    for rel, doc in docs.items():
        (tmp_path / rel).write_text(json.dumps(doc))
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "c", "description": "d",
               "links": [{"rel": "item", "href": f"./{rel}"} for rel in docs] + [{"rel": "self", "href": "x"}]}
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    scenes = {s.item_id: s for s in read_stac_catalog(tmp_path / "catalog.json")}
    assert scenes["../../etc/x"].href == str(tmp_path / "img" / "a.tif") and scenes["../../etc/x"].error is None
    assert scenes["../../etc/x"].when == {"datetime": "2021-01-01T00:00:00Z"}
    assert "remote" in scenes["remote"].error and "no GeoTIFF asset" in scenes["nogeotiff"].error


def test_folder_discovery_skips_the_output_root_and_temporaries(tmp_path):
    from geoseg.batch.config import InputConfig

    (tmp_path / "out" / "s").mkdir(parents=True)
    for rel in ["a.tif", "sub/b.tif", "out/s/landcover.tif", "c.geoseg-tmp-1.tif"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = discover(InputConfig(folder=tmp_path, glob="**/*.tif"), exclude=tmp_path / "out")
    assert [Path(s.path).name for s in found] == ["a.tif", "b.tif"]


def test_list_discovery_is_relative_to_the_list_file(tmp_path):
    from geoseg.batch.config import InputConfig

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "scenes.txt").write_text("# nightly scenes\n../a.tif\n\n  /abs/b.tif  \n../a.tif\n")
    found = discover(InputConfig(list=tmp_path / "lists" / "scenes.txt"))
    assert [s.path for s in found] == ["/abs/b.tif", str(tmp_path / "a.tif")]
    assert [s.name for s in found] == ["b", "a"]


def test_transient_and_permanent_errors():
    from distributed.scheduler import KilledWorker

    assert classify_error(OSError("disk")) == "transient"
    assert classify_error(KilledWorker("k", None, 3)) == "transient"
    assert classify_error(TimeoutError()) == "transient"
    assert classify_error(InputError("bad")) == "permanent"
    assert classify_error(ModelError("bad")) == "permanent"
    assert classify_error(ValueError("bug")) == "permanent"


def test_fixture_archive_scene_is_real(shared_data, tmp_path):
    import rasterio
    from support.batch_tools import write_crop

    path = write_crop(shared_data, "atlanta", tmp_path / "a.tif")
    with rasterio.open(path) as ds:
        assert ds.count == 4 and ds.crs is not None and np.any(ds.read(1))


def test_run_logs_sort_in_run_order_within_one_second(tmp_path):
    from geoseg.batch.runner import _run_log

    names = []
    for _ in range(12):  # far more runs than fit in different seconds
        with _run_log(tmp_path) as path:
            names.append(path.name)
    assert sorted(names) == names
    assert max((tmp_path / "logs").glob("*.log")).name == names[-1]
