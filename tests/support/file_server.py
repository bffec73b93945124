"""A file server on 127.0.0.1 for the pull tests, with the misbehaviours a model
download meets in the wild: no Range support, a connection cut midway, an ETag that
changes between attempts, a server that ignores If-Range, redirects (as Hugging Face
sends to its CDN), slow bodies. Plain ``http.server`` so a test controls every byte.

The tests live in test_pull.py, test_cache.py, test_assets.py and others, which wrap
``serve()`` and ``make_home()`` in their fixtures.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.support.servers import http_server


@dataclass
class Served:
    data: bytes
    etag: str | None = '"v1"'
    ranges: bool = True  # honour Range requests
    honor_if_range: bool = True  # False: send 206 even when If-Range no longer matches
    cut_after: int | None = None  # close the connection after this many body bytes...
    cuts: int = 0  # ...for this many responses
    delay: float = 0.0  # seconds to sleep between 64 kB body chunks
    redirect: str | None = None  # answer 302 to this path instead

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    range: str | None
    if_range: str | None
    status: int
    body_bytes: int


@dataclass
class FileServer:
    files: dict[str, Served] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, served: Served) -> str:
        self.files[path] = served
        return self.base_url + path

    def hits(self, method: str = "GET", path: str | None = None) -> list[Hit]:
        with self.lock:
            return [h for h in self.log if h.method == method and (path is None or h.path == path)]


_RANGE = re.compile(r"bytes=(\d+)-$")


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def handle(self) -> None:
            # The client hanging up early is part of what these tests do.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                super().handle()

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _record(self, status: int, sent: int) -> None:
            with server.lock:
                server.log.append(Hit(self.command, self.path, self.headers.get("Range"),
                                      self.headers.get("If-Range"), status, sent))

        def _serve(self, body: bool) -> None:
            spec = server.files.get(self.path)
            if spec is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._record(404, 0)
                return
            if spec.redirect:
                self.send_response(302)
                self.send_header("Location", spec.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._record(302, 0)
                return
            data, start, status = spec.data, 0, 200
            m = _RANGE.match(self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if m and spec.ranges and (if_range is None or if_range == spec.etag
                                      or not spec.honor_if_range):
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self._record(416, 0)
                    return
                status = 206
            payload = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Content-Type", "application/octet-stream")
            if spec.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if spec.etag:
                self.send_header("ETag", spec.etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                self._record(status, 0)
                return
            limit = len(payload)
            with server.lock:
                if spec.cuts > 0 and spec.cut_after is not None:
                    spec.cuts -= 1
                    limit = min(limit, spec.cut_after)
            sent = 0
            try:
                while sent < limit:
                    chunk = payload[sent:min(limit, sent + 65536)]
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if spec.delay:
                        time.sleep(spec.delay)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self._record(status, sent)
            if limit < len(payload):
                self.close_connection = True  # the cut: fewer bytes than Content-Length

    return Handler


def serve() -> Iterator[FileServer]:
    """Run a FileServer on 127.0.0.1 until the generator is closed (fixture body)."""
    fs = FileServer()
    with http_server(_handler(fs)) as fs.base_url:
        yield fs


def blob(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def make_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LOCALINFER_HOME, with the download settings a developer may have set
    cleared so they cannot change a test's outcome."""
    path = tmp_path / "home"
    monkeypatch.setenv("LOCALINFER_HOME", str(path))
    for var in ("LOCALINFER_DOWNLOAD_BANDWIDTH", "LOCALINFER_DOWNLOAD_CONFIRM_BYTES",
                "LOCALINFER_OFFLINE", "LOCALINFER_MODELS"):
        monkeypatch.delenv(var, raising=False)
    return path
