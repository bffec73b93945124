"""A file server on 127.0.0.1 for the hostile pull tests: per path a body, with or without
a Content-Length (without one the body ends when the connection does), optionally paced;
it counts the body bytes it wrote per path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from tests.support.servers import http_server

MB = 1 << 20
GGUF_HEAD = b"GGUF" + (3).to_bytes(4, "little") + bytes(16)  # v3, no tensors, no keys


@dataclass
class Body:
    data: bytes
    length: bool = True  # send Content-Length (else the body ends when the connection does)
    delay: float = 0.0  # seconds between 64 kB chunks
    head_length: bool = True  # send it in answer to HEAD too (some servers do not)


@dataclass
class Server:
    files: dict[str, Body] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # body bytes written per GET path
    base_url: str = ""

    def add(self, path: str, body: Body) -> str:
        self.files[path] = body
        return self.base_url + path


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # without a length the body ends at close

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            spec = server.files.get(self.path)
            if spec is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if spec.length and (body or spec.head_length):
                self.send_header("Content-Length", str(len(spec.data)))
            self.end_headers()
            if not body:
                return
            sent = 0
            try:
                while sent < len(spec.data):
                    chunk = spec.data[sent:sent + 65536]
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    sent += len(chunk)
                    server.sent[self.path] = sent
                    if spec.delay:
                        time.sleep(spec.delay)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    with http_server(_handler(srv)) as srv.base_url:
        yield srv
