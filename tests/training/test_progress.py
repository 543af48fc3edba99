"""Lightning's progress bars go to stderr: stdout is left for results."""

from __future__ import annotations


def test_training_progress_bar_writes_to_stderr(capsys):
    from geoseg.training.callbacks import StderrProgressBar

    bar = StderrProgressBar().init_train_tqdm()
    bar.total = 3
    for _ in range(3):
        bar.update(1)
    bar.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3/3" in captured.err
