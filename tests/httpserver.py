"""A throwaway HTTP server on 127.0.0.1 for download tests (no internet is needed or used)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@dataclass
class Server:
    root: Path
    url: str
    stop: Callable[[], None]


@contextmanager
def serve(root: Path) -> Iterator[Server]:
    """Serve `root` (created if missing) on a free port until the block ends or `stop()` is called."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)

    try:
        yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", stop)
    finally:
        stop()
