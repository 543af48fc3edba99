"""geoseg batch end to end on small real scenes: failures recorded, reruns idempotent, keys, retries, layout."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import rasterio
from support.batch_tools import (
    build_tiny_model,
    cli,
    make_archive,
    manifest_rows,
    output_hashes,
    temporaries,
    write_config,
    write_crop,
)
from support.stac_validation import validate_stac

from geoseg.batch import batch_status, run_batch
from geoseg.batch.config import load_batch_config
from geoseg.batch.keys import file_sha256
from geoseg.batch.manifest import RunLock
from geoseg.errors import ConfigError, InputError

GOOD = ("atlanta", "kampala", "massachusetts", "new_brunswick")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, shared_data):
    return make_archive(shared_data, tmp_path_factory.mktemp("archive"), GOOD, bad=True)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("small")
    for name in ("kampala", "new_brunswick"):
        write_crop(shared_data, name, folder / f"{name}.tif", size=192)
    return folder


@pytest.fixture(scope="module")
def scheduler():
    """One warm local cluster (worker processes) shared by the API-level tests, given as a scheduler address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def thread_cluster():
    """An in-process cluster, so a test can patch what the scene task does."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def check_item(folder: Path, source: Path, row: dict) -> dict:
    item = json.loads((folder / "item.json").read_text())
    validate_stac(item)
    assert item["stac_version"] == "1.1.0" and item["id"] == folder.name
    assert item["properties"]["geoseg:key"] == row["key"]
    with rasterio.open(source) as src:
        epsg = src.crs.to_epsg()
        from rasterio.warp import transform_bounds

        west, _, _, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert item["properties"]["proj:code"] == f"EPSG:{epsg}"
    bbox = item["bbox"]
    assert bbox[0] == pytest.approx(west, abs=1e-5) and bbox[3] == pytest.approx(north, abs=1e-5)
    assert item["properties"]["datetime"] is None and item["properties"]["start_datetime"]
    for asset in item["assets"].values():
        target = folder / asset["href"]
        assert asset["href"].startswith("./") and target.is_file()
        assert asset["file:checksum"] == "1220" + file_sha256(target)
    return item


def test_archive_with_bad_scenes_via_the_cli(tmp_path, archive, model):
    config = write_config(tmp_path / "etc" / "nightly.yaml", archive=archive, model=model, output="../out")
    root = tmp_path / "out"
    result = cli("-q", "batch", "run", "--config", str(config))
    assert result.returncode == 1, result.stderr
    rows = manifest_rows(root / "manifest.sqlite")
    expected = {**dict.fromkeys(GOOD, "done"), "corrupt": "failed", "no_crs": "failed"}
    assert {k: r["status"] for k, r in rows.items()} == expected
    assert rows["corrupt"]["reason"].startswith("InputError:") and "not a readable GeoTIFF" in rows["corrupt"]["reason"]
    assert "has no CRS" in rows["no_crs"]["reason"]
    assert rows["corrupt"]["failure_kind"] == "permanent" and rows["corrupt"]["attempts"] == 1
    assert "failed: corrupt: InputError" in result.stderr

    for name in GOOD:
        folder = root / name
        assert sorted(p.name for p in folder.iterdir()) == ["confidence.tif", "item.json", "landcover.qml",
                                                            "landcover.tif"]
        check_item(folder, archive / f"{name}.tif", rows[name])
        with rasterio.open(folder / "landcover.tif") as out, rasterio.open(archive / f"{name}.tif") as src:
            assert (out.width, out.height, out.crs, out.transform) == (src.width, src.height, src.crs, src.transform)
        outputs = json.loads(rows[name]["outputs"])
        on_disk = {file_sha256(folder / Path(o["path"]).name) for o in outputs.values()}
        assert {o["sha256"] for o in outputs.values()} == on_disk
    collection = json.loads((root / "collection.json").read_text())
    validate_stac(collection)
    assert sorted(link["href"] for link in collection["links"] if link["rel"] == "item") == \
        [f"./{name}/item.json" for name in sorted(GOOD)]
    logs = list((root / "logs").glob("*.log"))
    assert len(logs) == 1 and "corrupt failed (permanent)" in logs[0].read_text()
    assert not temporaries(root)

    status = cli("batch", "status", "--config", str(config))
    assert status.returncode == 0
    assert "done 4, failed 2 (total 6)" in status.stdout and "no_crs [permanent] InputError" in status.stdout

    # The second run does nothing and leaves every output byte-identical; it exits 1 while scenes stay failed.
    before = output_hashes(root)
    started = time.monotonic()
    again = cli("-q", "batch", "run", "--config", str(config))
    assert again.returncode == 1 and time.monotonic() - started < 15
    assert output_hashes(root) == before
    assert {k: r["finished_at"] for k, r in manifest_rows(root / "manifest.sqlite").items() if k in GOOD} == \
        {k: r["finished_at"] for k, r in rows.items() if k in GOOD}
    assert len(list((root / "logs").glob("*.log"))) == 2

    # Touching an input (same content, new mtime) changes nothing; --retry-failed plans the failures again.
    os.utime(archive / "kampala.tif", ns=(time.time_ns(), time.time_ns()))
    dry = cli("batch", "run", "--config", str(config), "--dry-run")
    assert dry.returncode == 0 and "would process 0 of 6" in dry.stdout, dry.stdout
    dry = cli("batch", "run", "--config", str(config), "--dry-run", "--retry-failed")
    assert "would process 2 of 6" in dry.stdout and "failed-retry" in dry.stdout and "corrupt" in dry.stdout
    assert output_hashes(root) == before


def test_changed_steps_reprocess_and_unchanged_ones_do_not(tmp_path, small_archive, model, scheduler):
    config = write_config(tmp_path / "b.yaml", archive=small_archive, model=model)
    first = run_batch(config, scheduler=scheduler)
    assert (first.processed, first.exit_code, [p.reason for p in first.planned]) == (2, 0, ["new", "new"])
    keys = {k: r["key"] for k, r in manifest_rows(tmp_path / "out" / "manifest.sqlite").items()}

    write_config(config, archive=small_archive, model=model, predict={"batch_size": 2})
    assert run_batch(config, scheduler=scheduler, dry_run=True).planned == ()  # batch size is not in the key

    write_config(config, archive=small_archive, model=model, predict={"overlap": 32})
    dry = run_batch(config, scheduler=scheduler, dry_run=True)
    assert [p.reason for p in dry.planned] == ["changed key", "changed key"]
    assert not (tmp_path / "out" / "logs" / "x").exists()
    second = run_batch(config, scheduler=scheduler)
    assert second.processed == 2
    rows = manifest_rows(tmp_path / "out" / "manifest.sqlite")
    assert all(rows[k]["key"] != keys[k] for k in keys)

    vector = {"vectorize": {"classes": ["building"], "min_area": 0.0, "simplify": 0.0}}
    data = load_yaml(config)
    data["steps"].update(vector)
    save_yaml(config, data)
    third = run_batch(config, scheduler=scheduler)
    assert third.processed == 2
    gpkg = tmp_path / "out" / "kampala" / "building.gpkg"
    item = json.loads((tmp_path / "out" / "kampala" / "item.json").read_text())
    assert item["assets"]["building_polygons"]["type"] == "application/geopackage+sqlite3"
    import pyogrio

    assert pyogrio.read_info(gpkg, layer="building")["features"] == item["properties"]["geoseg:features"]["building"]

    data["steps"]["vectorize"]["min_area"] = 50.0
    save_yaml(config, data)
    assert [p.reason for p in run_batch(config, scheduler=scheduler, dry_run=True).planned] == ["changed key"] * 2
    assert run_batch(config, scheduler=scheduler).processed == 2

    del data["steps"]["vectorize"]
    save_yaml(config, data)
    assert run_batch(config, scheduler=scheduler).processed == 2
    assert not gpkg.exists()  # an output of an earlier key that is no longer made goes
    assert sorted(p.name for p in gpkg.parent.iterdir()) == ["confidence.tif", "item.json", "landcover.qml",
                                                             "landcover.tif"]


def load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def save_yaml(path: Path, data: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_missing_or_altered_outputs_are_rebuilt_identically(tmp_path, small_archive, model, scheduler):
    config = write_config(tmp_path / "b.yaml", archive=small_archive, model=model)
    run_batch(config, scheduler=scheduler)
    root = tmp_path / "out"
    before = output_hashes(root)
    (root / "kampala" / "confidence.tif").unlink()
    with open(root / "new_brunswick" / "landcover.tif", "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))
    item = root / "new_brunswick" / "item.json"
    os.utime(item, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes: verified, not rebuilt
    dry = run_batch(config, scheduler=scheduler, dry_run=True)
    reasons = {p.scene_id: p.reason for p in dry.planned}
    assert reasons == {"kampala": "outputs missing", "new_brunswick": "outputs changed"}
    summary = run_batch(config, scheduler=scheduler)
    assert summary.processed == 2 and summary.exit_code == 0
    assert output_hashes(root) == before


def test_a_second_run_on_the_same_manifest_exits_2(tmp_path, small_archive, model):
    config = write_config(tmp_path / "b.yaml", archive=small_archive, model=model)
    with RunLock(tmp_path / "out" / "manifest.sqlite"):
        result = cli("batch", "run", "--config", str(config))
    assert result.returncode == 2
    assert "another geoseg batch run is using" in result.stderr and f"pid {os.getpid()}" in result.stderr


def test_config_errors_exit_2(tmp_path, small_archive, model):
    config = write_config(tmp_path / "b.yaml", archive=small_archive, model=tmp_path / "missing.safetensors")
    result = cli("batch", "run", "--config", str(config))
    assert result.returncode == 2 and "model:" in result.stderr and "does not exist" in result.stderr
    (tmp_path / "c.yaml").write_text("input: {folder: x}\noutput: o\nretries: many\n")
    result = cli("batch", "run", "--config", str(tmp_path / "c.yaml"))
    assert result.returncode == 2 and "retries must be an integer" in result.stderr
    with pytest.raises(ConfigError, match="input folder"):
        run_batch(write_config(tmp_path / "d.yaml", archive=tmp_path / "nowhere", model=model))


def test_hostile_scene_names_stay_inside_the_output_root(tmp_path, shared_data, model, scheduler):
    images = tmp_path / "images"
    images.mkdir()
    ids = ["../../etc/x.tif", "/abs/evil", "Zürich Süd", ".hidden", "logs"]
    links = []
    for i, item_id in enumerate(ids):
        write_crop(shared_data, "massachusetts", images / f"{i}.tif", size=96)
        item = {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "geometry": None, "links": [],
                "properties": {"datetime": "2019-06-01T10:00:00Z"},
                "assets": {"image": {"href": f"../images/{i}.tif", "type": "image/tiff; application=geotiff",
                                     "roles": ["data"]}}}
        (tmp_path / "items").mkdir(exist_ok=True)
        (tmp_path / "items" / f"{i}.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": f"./items/{i}.json"})
    (tmp_path / "catalog.json").write_text(json.dumps({"type": "Catalog", "id": "c", "stac_version": "1.0.0",
                                                       "description": "hostile ids", "links": links}))
    config = write_config(tmp_path / "b.yaml", archive=images, model=model, output="out/root")
    data = load_yaml(config)
    data["input"] = {"stac": "catalog.json"}
    save_yaml(config, data)
    summary = run_batch(config, scheduler=scheduler)
    assert summary.processed == len(ids) and summary.exit_code == 0
    root = (tmp_path / "out" / "root").resolve()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".tif", ".json") and "out" in p.parts]
    assert written and all(p.resolve().is_relative_to(root) for p in written)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "logs")
    assert len(folders) == len(ids) and all(not f.startswith(".") for f in folders)
    assert any(f.startswith("Zurich_Sud-") for f in folders) and "logs" not in folders
    for f in folders:
        item = json.loads((root / f / "item.json").read_text())
        assert item["id"] == f and item["properties"]["datetime"] == "2019-06-01T10:00:00Z"
        assert item["links"][0]["rel"] == "derived_from"
    assert not (tmp_path / "etc").exists() and not Path("/abs/evil").exists()


def test_transient_errors_are_retried_with_backoff_permanent_ones_are_not(tmp_path, shared_data, model, thread_cluster,
                                                                       monkeypatch):
    from geoseg.batch import tasks as task

    images = tmp_path / "images"
    images.mkdir()
    for name in ("flaky", "broken", "bad"):
        write_crop(shared_data, "kampala", images / f"{name}.tif", size=96)
    calls = {"flaky": 0, "broken": 0, "bad": 0}
    real = task._process

    def process(job, client):
        calls[job.scene_id] += 1
        if job.scene_id == "flaky" and calls["flaky"] == 1:
            raise OSError(5, "Input/output error", job.source)
        if job.scene_id == "broken":
            raise TimeoutError("reading took too long")
        if job.scene_id == "bad":
            raise InputError(f"{job.source!r} has 2 data bands but the model expects 3")
        return real(job, client)

    monkeypatch.setattr(task, "_process", process)
    config = write_config(tmp_path / "b.yaml", archive=images, model=model, retries=2, retry_backoff=0.1)
    started = time.monotonic()
    summary = run_batch(config, scheduler=thread_cluster)
    assert time.monotonic() - started >= 0.3  # backoff 0.1 s then 0.2 s for "broken"
    rows = manifest_rows(tmp_path / "out" / "manifest.sqlite")
    assert calls == {"flaky": 2, "broken": 3, "bad": 1}
    assert (rows["flaky"]["status"], rows["flaky"]["attempts"]) == ("done", 2)
    assert (rows["broken"]["status"], rows["broken"]["failure_kind"]) == ("failed", "transient")
    assert rows["broken"]["reason"] == "TimeoutError: reading took too long (after 3 attempts)"
    assert (rows["bad"]["status"], rows["bad"]["failure_kind"], rows["bad"]["attempts"]) == ("failed", "permanent", 1)
    assert summary.exit_code == 1 and {f.scene_id for f in summary.failed} == {"broken", "bad"}
    assert "retry 1 of 2" in summary.log.read_text()

    # Next run: the transient failure is retried by itself, the permanent one only when asked.
    plan = run_batch(config, scheduler=thread_cluster, dry_run=True)
    assert [(p.scene_id, p.reason) for p in plan.planned] == [("broken", "failed-retry")]
    plan = run_batch(config, scheduler=thread_cluster, dry_run=True, retry_failed=True)
    assert [(p.scene_id, p.reason) for p in plan.planned] == [("bad", "failed-retry"), ("broken", "failed-retry")]
    status = batch_status(config)
    assert status.counts["done"] == 1 and status.counts["failed"] == 2
    assert {f.scene_id: f.kind for f in status.failures} == {"bad": "permanent", "broken": "transient"}


def test_empty_archive_and_status_before_any_run(tmp_path, model):
    (tmp_path / "empty").mkdir()
    config = write_config(tmp_path / "b.yaml", archive=tmp_path / "empty", model=model)
    status = batch_status(config)
    assert not status.exists and status.total == 0
    summary = run_batch(config)
    assert (summary.total, summary.processed, summary.exit_code) == (0, 0, 0)
    assert load_batch_config(config).manifest_path.exists()
