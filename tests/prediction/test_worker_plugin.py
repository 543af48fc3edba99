"""The model plugin on Dask workers: torch threads set in each task's own thread, large arrays from the heap."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from geoseg.prediction.tasks import ModelPlugin


def test_each_task_thread_gets_the_workers_torch_threads():
    plugin = ModelPlugin(("unused.safetensors",), torch_threads=1)
    seen = {}

    def task() -> None:
        torch.set_num_threads(2)  # what a fresh thread may start with (torch keeps the count per OS thread)
        plugin.settle()
        seen["threads"] = torch.get_num_threads()

    t = threading.Thread(target=task)
    t.start()
    t.join()
    assert seen["threads"] == 1


_PROBE = "from geoseg.prediction.tasks import heap_for_large_allocations as h; print(h())"


@pytest.mark.parametrize(("env", "expected"), [
    # what Dask's nanny sets: the mmap threshold raised where there is glibc's mallopt (Linux)
    ({"MALLOC_TRIM_THRESHOLD_": "65536"}, str(sys.platform.startswith("linux"))),
    ({"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_MMAP_THRESHOLD_": "131072"}, "False"),  # the user chose
    ({}, "False"),  # glibc adapts the threshold itself
])
def test_large_allocations_come_from_the_heap_only_where_dask_fixed_the_thresholds(env, expected):
    out = subprocess.run([sys.executable, "-c", _PROBE], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected
