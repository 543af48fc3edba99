"""A small HTTP server on 127.0.0.1 that serves a folder and honours Range requests (like a COG host)."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Served:
    """What the server answered: ``(method, path, status, range header, bytes sent)`` per request."""

    requests: list[tuple[str, str, int, str | None, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _record(self, status: int, sent: int) -> None:
        with self.served.lock:
            self.served.requests.append((self.command, self.path, status, self.headers.get("Range"), sent))

    def _file(self) -> Path | None:
        path = Path(self.translate_path(self.path.split("?", 1)[0]))
        return path if path.is_file() else None

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        path = self._file()
        if path is None:
            self.send_error(404)
            self._record(404, 0)
            return
        data = path.read_bytes()
        size = len(data)
        start, end, status = 0, size - 1, 200
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                self.send_error(416)
                self._record(416, 0)
                return
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:  # a suffix: the last N bytes
                start, end = max(0, size - int(last)), size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                self._record(416, 0)
                return
            status = 206
        chunk = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self.wfile.write(chunk)
        self._record(status, len(chunk) if body else 0)


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[tuple[str, Served]]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while the block runs; yields the base URL and the request log."""
    served = Served()
    handler = type("Handler", (RangeHandler,), {"served": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
