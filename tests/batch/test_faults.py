"""geoseg batch under faults: the run SIGKILLed at several points, a Dask worker killed, an external cluster.

Every case ends with outputs byte-identical to an uninterrupted run and no temporary files left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.batch_tools import (
    build_tiny_model,
    cli,
    make_archive,
    manifest_rows,
    output_hashes,
    run_until_then_kill,
    temporaries,
    write_config,
)

from geoseg.batch import run_batch

pytestmark = pytest.mark.slow

SCENES = ("atlanta", "kampala", "massachusetts")
#: The ``dask`` command of this Python environment.
DASK = [sys.executable, "-m", "dask"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, shared_data):
    return make_archive(shared_data, tmp_path_factory.mktemp("archive"), SCENES, bad=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, archive, model):
    """Outputs of an uninterrupted run (through the CLI, on its own local cluster)."""
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder / "b.yaml", archive=archive, model=model, concurrency=1)
    result = cli("-q", "batch", "run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    hashes = output_hashes(folder / "out")
    # landcover.tif, its landcover.qml, confidence.tif and item.json per scene, and the collection.
    assert len(hashes) == 4 * len(SCENES) + 1
    return hashes


def finish_and_compare(config: Path, root: Path, reference: dict[str, str]) -> dict[str, dict]:
    result = cli("-q", "batch", "run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert output_hashes(root) == reference
    assert not temporaries(root)
    rows = manifest_rows(root / "manifest.sqlite")
    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(SCENES, "done")
    return rows


def any_done(root: Path):
    return lambda: any(r["status"] == "done" for r in manifest_rows(root / "manifest.sqlite").values())


def predict_in_progress(root: Path):
    """A scene's predict is staging its rasters: its uncompressed staging rasters live for the whole tile work,
    where other temporaries (a sidecar, a COG being renamed) may be gone a millisecond after they are seen."""
    return lambda: any(p.parent != root and ".staging" in p.name for p in temporaries(root))


def scene_running(root: Path):
    return lambda: any(r["status"] == "running" for r in manifest_rows(root / "manifest.sqlite").values())


@pytest.mark.parametrize("moment", ["scene running", "during predict", "after first scene"])
def test_sigkill_at_any_moment_then_rerun_gives_identical_outputs(tmp_path, archive, model, reference, moment):
    config = write_config(tmp_path / "b.yaml", archive=archive, model=model, concurrency=1)
    root = tmp_path / "out"
    when = {"scene running": scene_running, "during predict": predict_in_progress,
            "after first scene": any_done}[moment]
    assert run_until_then_kill(config, when(root)) == "killed"
    rows = manifest_rows(root / "manifest.sqlite")
    assert len([r for r in rows.values() if r["status"] == "done"]) < len(SCENES)
    if moment == "during predict":
        assert temporaries(root)  # the kill left half-written files behind ...
    rows = finish_and_compare(config, root, reference)  # ... which the next run removes
    assert all(r["reason"] is None for r in rows.values())
    log = max((root / "logs").glob("*.log")).read_text()
    if moment != "after first scene":
        assert "back to pending" in log


def test_a_killed_worker_does_not_lose_a_scene(tmp_path, archive, model, reference):
    from distributed import Client, LocalCluster

    config = write_config(tmp_path / "b.yaml", archive=archive, model=model, concurrency=2, retries=2,
                          retry_backoff=0.5)
    root = tmp_path / "out"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        outcome: dict = {}
        runner = threading.Thread(
            target=lambda: outcome.update(summary=run_batch(config, scheduler=cluster.scheduler_address))
        )
        runner.start()
        deadline = time.monotonic() + 120
        while not predict_in_progress(root)() and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = client.run(os.getpid)
        victim = min(pids.values())
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=240)
        assert not runner.is_alive()
    summary = outcome["summary"]
    assert summary.exit_code == 0 and summary.processed == len(SCENES)
    assert output_hashes(root) == reference
    assert not temporaries(root)


@pytest.fixture
def external_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, stopped afterwards."""
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [*DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
         "--scheduler-file", str(file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [*DASK, "worker", "--scheduler-file", str(file), "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
        address = json.loads(file.read_text())["address"]
        from distributed import Client

        with Client(address, set_as_default=False, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_the_same_batch_on_an_external_scheduler(tmp_path, archive, model, reference, external_cluster):
    config = write_config(tmp_path / "b.yaml", archive=archive, model=model)
    result = cli("-q", "batch", "run", "--config", str(config), "--scheduler", external_cluster)
    assert result.returncode == 0, result.stderr
    assert output_hashes(tmp_path / "out") == reference
    again = cli("batch", "run", "--config", str(config), "--scheduler", external_cluster, "--dry-run")
    assert "would process 0 of 3" in again.stdout
