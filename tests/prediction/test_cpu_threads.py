"""CPU lanes share torch's threads; when one lane finishes, the others take over its threads only if their
tiles are slow enough for more threads to pay off."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from geoseg.prediction.local import TAKE_OVER_ABOVE_S, CpuThreads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _lane_threads(cpu: CpuThreads, seconds_per_tile: float) -> list[int]:
    """Torch threads of a lane that does two tiles of ``seconds_per_tile``, then again after the other lane left."""
    seen: list[int] = []

    def lane() -> None:
        cpu.settle()
        for _ in range(2):
            time.sleep(seconds_per_tile)
            cpu.settle(1)
        seen.append(torch.get_num_threads())
        cpu.leave()  # the other lane (this test plays both) has no more blocks
        time.sleep(seconds_per_tile)
        cpu.settle(1)
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=lane)
    t.start()
    t.join()
    return seen


def test_a_lane_with_slow_tiles_takes_over_the_threads_of_a_finished_lane(two_threads):
    assert _lane_threads(CpuThreads(2), TAKE_OVER_ABOVE_S * 2) == [1, 2]


def test_a_lane_with_quick_tiles_keeps_its_one_thread(two_threads):
    assert _lane_threads(CpuThreads(2), 0.0) == [1, 1]


def test_the_creating_threads_count_is_put_back(two_threads):
    cpu = CpuThreads(2)
    _lane_threads(cpu, 0.0)
    cpu.restore()
    assert torch.get_num_threads() == 2
