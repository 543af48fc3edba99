"""Fixtures for the hardening tests: small tmpfs mounts (a read-only and a full disk), a canary HTTP server."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(target: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    target.mkdir(exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True).returncode == 0


@contextlib.contextmanager
def _mounted(target: Path, options: str) -> Iterator[Path]:
    if not _mount(target, options):
        pytest.skip("needs root and tmpfs to mount a small file system")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 16 KiB tmpfs: real ENOSPC for anything larger."""
    with _mounted(tmp_path / "full", "size=16k") as folder:
        yield folder


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[object]:
    """``small_disk(size)``: a folder on a tmpfs of ``size`` (``"256k"``), unmounted after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda size: stack.enter_context(_mounted(tmp_path / f"disk-{size}", f"size={size}"))


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only tmpfs: real EROFS (root ignores permission bits, so chmod would not do)."""
    with _mounted(tmp_path / "ro", "size=64k,ro") as folder:
        yield folder


class _Canary(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[tuple[str, list[str]]]:
    """``(url, hits)``: an HTTP server on 127.0.0.1 recording every request path."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.hits  # type: ignore[attr-defined]
    finally:
        server.shutdown()

