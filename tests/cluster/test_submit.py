"""The bounded submission helper and the cluster chooser, on an in-process cluster."""

from __future__ import annotations

import threading
import time

import pytest
from distributed import Client, LocalCluster

from geoseg.cluster import ClusterSpec, TaskStream, bounded_map, dask_client

_running = {"now": 0, "most": 0}
_lock = threading.Lock()


def slow_square(x: int, pause: float = 0.01) -> int:
    with _lock:
        _running["now"] += 1
        _running["most"] = max(_running["most"], _running["now"])
    time.sleep(pause * (x % 3))
    with _lock:
        _running["now"] -= 1
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


def test_results_in_order_or_as_finished(client):
    calls = [(i,) for i in range(30)]
    ordered = list(bounded_map(client, slow_square, calls, ordered=True, limit=5))
    assert ordered == [(i, i * i) for i in range(30)]
    unordered = dict(bounded_map(client, slow_square, calls, limit=5))
    assert unordered == {i: i * i for i in range(30)}


def test_no_more_than_the_limit_in_flight(client):
    _running["most"] = 0
    list(bounded_map(client, slow_square, [(i, 0.05) for i in range(12)], limit=2))
    assert _running["most"] <= 2


def test_an_error_is_raised_and_the_rest_cancelled(client):
    with pytest.raises(ValueError, match="bad input 3"):
        list(bounded_map(client, fail_on, [(i, 3) for i in range(50)], ordered=True, limit=4))


def test_follow_up_futures_come_out_of_the_same_stream(client):
    seen = []
    with TaskStream(client, slow_square, [(i,) for i in range(6)], limit=2) as stream:
        for tag, future in stream:
            if isinstance(tag, int):
                stream.add(client.submit(slow_square, future.result() + 1, pure=False), ("plus one", tag))
            else:
                seen.append((tag[1], future.result()))
    assert sorted(seen) == [(i, (i * i + 1) ** 2) for i in range(6)]
    with pytest.raises(TypeError):
        TaskStream(client, slow_square, []).add(client.submit(slow_square, 1), 7)


def test_the_chooser_passes_a_given_client_through(client):
    with dask_client(ClusterSpec(scheduler="tcp://nowhere:1"), client=client) as c:
        assert c is client
