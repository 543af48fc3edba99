"""A batch whose model is a segmentation-models-pytorch save_pretrained folder (with its geoseg card)."""

from __future__ import annotations

import json

from support.batch_tools import build_tiny_model, manifest_rows, write_config, write_crop
from support.stac_validation import validate_stac

from geoseg.batch import run_batch
from geoseg.model.network import load_model
from geoseg.model.smp_folder import CARD_FILE, save_smp_folder


def test_batch_runs_an_smp_folder_model(tmp_path, shared_data):
    from distributed import LocalCluster

    archive = tmp_path / "archive"
    archive.mkdir()
    write_crop(shared_data, "kampala", archive / "kampala.tif", size=160)
    folder = save_smp_folder(load_model(build_tiny_model(tmp_path / "tiny.safetensors")), tmp_path / "models" / "tiny")
    config = write_config(tmp_path / "b.yaml", archive=archive, model=folder)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        summary = run_batch(config, scheduler=cluster.scheduler_address)
        assert summary.processed == 1 and not summary.failed, summary.failed
        key = manifest_rows(tmp_path / "out" / "manifest.sqlite")["kampala"]["key"]
        # The card is part of the model: changing it changes every scene's key.
        card = json.loads((folder / CARD_FILE).read_text())
        card["tile_size"] = 96
        (folder / CARD_FILE).write_text(json.dumps(card))
        assert [p.reason for p in run_batch(config, scheduler=cluster.scheduler_address, dry_run=True).planned] == \
            ["changed key"]
    item = json.loads((tmp_path / "out" / "kampala" / "item.json").read_text())
    validate_stac(item)
    assert item["properties"]["geoseg:key"] == key
