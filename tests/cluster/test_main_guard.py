"""geoseg called from a plain script without a __main__ guard works (workers become threads), with one warning."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.nets import tiny_unet
from support.rasters import write_raster

from geoseg.cluster.main_guard import _guarded, unguarded_main_script
from geoseg.model.network import save_model


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scripts")
    model = save_model(tiny_unet(), folder / "m.safetensors")
    scene = write_raster(folder / "s.tif", np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8))
    return folder, model, scene


def run_script(folder: Path, body: str) -> subprocess.CompletedProcess:
    script = folder / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True, timeout=600)


def test_unguarded_script_runs_on_worker_threads(inputs):
    folder, model, scene = inputs
    result = run_script(folder, f"""
        import geoseg
        geoseg.predict({str(scene)!r}, {str(model)!r}, "out.tif", overlap=8, workers=2, overwrite=True)
        print("predicted")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "predicted" and (folder / "out.tif").is_file()
    assert "Traceback" not in result.stderr
    assert 'if __name__ == "__main__":' in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_guarded_script_keeps_worker_processes(inputs):
    folder, model, scene = inputs
    result = run_script(folder, f"""
        import logging
        import geoseg

        def main():
            geoseg.predict({str(scene)!r}, {str(model)!r}, "guarded.tif", overlap=8, workers=1, overwrite=True)

        if __name__ == "__main__":
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            main()
    """)
    assert result.returncode == 0, result.stderr
    assert "worker process(es)" in result.stderr and "thread pool" not in result.stderr


def test_guard_detection(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import x\nx.run()\n\nif __name__ == '__main__':\n    x.run()\n    x.more()\nx.after()\n")
    mtime = script.stat().st_mtime
    assert [_guarded(str(script), mtime, line) for line in (2, 5, 6, 7)] == [False, True, True, False]
    assert unguarded_main_script() is None  # pytest's own __main__ is a package's: never run again
