"""Submitting many tasks to Dask without flooding it: at most a window of them in flight.

:class:`TaskStream` submits calls lazily, keeps at most ``limit`` of them
running (earlier calls first, by priority), and yields futures as they finish
(or in call order).  Callers can add follow-up futures to wait for in the same
stream.  :func:`bounded_map` is the common case: results, with the futures
released as soon as they are read.  Closing a stream cancels what is left.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["TaskStream", "bounded_map", "default_limit"]


def default_limit(client: Client) -> int:
    """Tasks in flight: two per worker thread, and a few more so that no thread waits for the client."""
    return 2 * max(1, sum(client.nthreads().values())) + 2


class TaskStream:
    """``func(*args)`` for each of ``calls`` on ``client``; iterate for ``(tag, future)`` as each finishes.

    A call's tag is its index.  With ``ordered``, call futures come out in call
    order (the window then counts those not yet handed out).  :meth:`add`
    puts follow-up futures (any hashable tag) in the same stream, outside the
    window.
    """

    def __init__(
        self,
        client: Client,
        func: Callable[..., Any],
        calls: Iterable[Sequence[Any]],
        *,
        limit: int | None = None,
        ordered: bool = False,
    ) -> None:
        from distributed import as_completed

        self._client = client
        self._func = func
        self._calls = enumerate(calls)
        self._limit = max(1, limit or default_limit(client))
        self._ordered = ordered
        self._done = as_completed(loop=client.loop)
        self._tags: dict[Hashable, Hashable] = {}
        self._live: dict[Hashable, Future] = {}
        self._in_window = 0
        self._next = 0
        self._held: dict[int, Future] = {}

    def _fill(self) -> None:
        while self._in_window < self._limit:
            item = next(self._calls, None)
            if item is None:
                return
            index, args = item
            future = self._client.submit(self._func, *args, pure=False, priority=-index)
            self._watch(future, index)
            self._in_window += 1

    def _watch(self, future: Future, tag: Hashable) -> None:
        self._tags[future.key] = tag
        self._live[future.key] = future
        self._done.add(future)

    def add(self, future: Future, tag: Hashable) -> None:
        """Also wait for ``future`` (a follow-up task); it comes out tagged ``tag`` (not an int: those are calls)."""
        if isinstance(tag, int):
            raise TypeError(f"follow-up tags must not be ints (those tag calls), got {tag!r}")
        self._watch(future, tag)

    def __iter__(self) -> Iterator[tuple[Hashable, Future]]:
        self._fill()
        for future in self._done:
            tag = self._tags.pop(future.key)
            self._live.pop(future.key, None)
            if not isinstance(tag, int):
                yield tag, future
                continue
            if not self._ordered:
                self._in_window -= 1
                self._fill()
                yield tag, future
                continue
            self._held[tag] = future
            while self._next in self._held:
                ready = self._held.pop(self._next)
                self._next += 1
                self._in_window -= 1
                self._fill()
                yield self._next - 1, ready

    def close(self) -> None:
        """Cancel every future not yet finished or handed out."""
        for future in itertools.chain(self._live.values(), self._held.values()):
            future.cancel()
        self._live.clear()
        self._held.clear()

    def __enter__(self) -> TaskStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bounded_map(
    client: Client,
    func: Callable[..., Any],
    calls: Iterable[Sequence[Any]],
    *,
    limit: int | None = None,
    ordered: bool = False,
) -> Generator[tuple[int, Any], None, None]:
    """``(index, func(*call))`` for each call, run on ``client`` at most ``limit`` at a time.

    Results come as tasks finish, or in call order with ``ordered``.  A task's
    error is raised here, and the tasks left are cancelled.
    """
    with TaskStream(client, func, calls, limit=limit, ordered=ordered) as stream:
        for tag, future in stream:
            result = future.result()
            future.release()
            yield int(tag), result  # type: ignore[call-overload]
