"""What a resumed run may change (only trainer.epochs), and where the report goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geoseg.errors import ConfigError, OutputExistsError
from geoseg.training.api import _prepare_run_dir, report_path_for, run_dir_for
from geoseg.training.config import load_config

MINIMAL = {
    "scenes": [{"image": "img.tif", "labels": "labels.gpkg", "fill": 0}],
    "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "building"}],
}


def test_report_is_named_after_the_model(tmp_path):
    assert report_path_for(tmp_path / "roofs.safetensors") == tmp_path / "roofs.report.json"
    assert report_path_for("a/b.v2.safetensors") == Path("a/b.v2.report.json")


def test_a_finished_run_resumes_with_more_epochs_only(tmp_path):
    out = tmp_path / "m.safetensors"
    cfg = load_config(MINIMAL, overrides=["trainer.epochs=2"])
    run_dir = _prepare_run_dir(out, cfg, overwrite=False, resume=False)
    (run_dir / "last.ckpt").write_bytes(b"checkpoint")
    out.write_bytes(b"model")
    report_path_for(out).write_text("{}")
    with pytest.raises(OutputExistsError):
        _prepare_run_dir(out, cfg, overwrite=False, resume=False)

    longer = load_config(MINIMAL, overrides=["trainer.epochs=5"])
    assert _prepare_run_dir(out, longer, overwrite=False, resume=True) == run_dir_for(out)
    assert json.loads((run_dir / "run.json").read_text())["config"]["trainer"]["epochs"] == 5
    other = load_config(MINIMAL, overrides=["trainer.epochs=5", "trainer.batch_size=3"])
    with pytest.raises(ConfigError, match="only trainer.epochs may change"):
        _prepare_run_dir(out, other, overwrite=False, resume=True)


@pytest.mark.parametrize("kind", ["onecycle", "cosine"])
def test_schedule_state_continues_on_a_longer_schedule(kind):
    import torch

    from geoseg.training.task import _StretchableCosineLR, _StretchableOneCycleLR

    def schedule(steps: int):
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        if kind == "onecycle":
            return opt, _StretchableOneCycleLR(opt, max_lr=0.01, total_steps=steps)
        return opt, _StretchableCosineLR(opt, T_max=steps)

    opt, short = schedule(4)
    for _ in range(4):
        opt.step()
        short.step()
    state = short.state_dict()
    opt, longer = schedule(6)
    longer.load_state_dict(state)
    assert longer.last_epoch == 4
    for _ in range(2):  # the old 4-step schedule would refuse a 5th step
        opt.step()
        longer.step()
    same_opt, same = schedule(4)
    same.load_state_dict(state)
    assert same.state_dict() == state  # resuming with the same epochs changes nothing
