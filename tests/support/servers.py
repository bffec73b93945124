"""What tests share about the servers they start: the repository root, how long a server
may take to start, how many threads it gets, and ``serve`` (a server process for the
length of a fixture). The fixtures themselves live in tests/conftest.py."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fakes.serve import ServerProcess

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120.0
# Two cores are shared by everything running here; the servers only need to answer.
SERVER_THREADS = os.environ.get("LOCALINFER_TEST_THREADS", "2")

# The ``run_app`` fixture: ``run_app(asgi_app, port=0) -> base_url``.
RunApp = Callable[..., str]


def serve(cmd: list[str], ready_path: str, port: int, log: Path) -> Iterator[str]:
    """Start ``cmd`` (listening on ``port``), yield its base URL once ``ready_path``
    answers, stop it afterwards; a server that does not come up fails the test."""
    base_url = f"http://127.0.0.1:{port}"
    server = ServerProcess(cmd, base_url + ready_path, log=log, timeout=STARTUP_TIMEOUT)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield base_url
    finally:
        server.stop()


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """The standard library's threading HTTP server on 127.0.0.1 (a free port) for the
    ``with`` block: its base URL. Stopped at once on leaving (a 10 ms poll, not 0.5 s)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
