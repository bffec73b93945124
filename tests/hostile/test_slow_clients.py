"""No connection can be held forever (hardening §4): the real `localinfer serve`, its
soft fd limit lowered to 256 before start, against 300 clients that trickle headers."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.serve import free_port

pytestmark = [pytest.mark.hostile, pytest.mark.slow]

SLOW_CLIENTS = 300
HEADER_TIMEOUT = 3.0


def low_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def start_gateway(home: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    environment.update(LOCALINFER_HOME=str(home), LOCALINFER_SCAN_DEFAULT_PORTS="off",
                       LOCALINFER_EMBEDDED="off", **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "localinfer.cli.main", "serve", "--port", str(port)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, preexec_fn=low_fd_limit)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", trust_env=False, timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gateway did not start")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    process, base = start_gateway(tmp_path, LOCALINFER_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
                                  LOCALINFER_BODY_TIMEOUT=str(HEADER_TIMEOUT))
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def trickle(port: int, count: int, first: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(first)
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except (TimeoutError, ConnectionResetError):
        return isinstance(sys.exc_info()[1], ConnectionResetError)


def test_300_slow_clients_do_not_starve_health(gateway: str) -> None:
    port = httpx.URL(gateway).port
    assert port is not None
    socks = trickle(port, SLOW_CLIENTS, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")
    try:
        started = time.perf_counter()
        response = httpx.get(gateway + "/health", trust_env=False, timeout=30)
        latency = time.perf_counter() - started
        assert response.status_code == 200
        print(f"/health with {SLOW_CLIENTS} slow clients open: {latency * 1000:.1f} ms")
        # Every one of them is closed by the server at the header timeout (generous
        # margin for a loaded machine; without the timeout they stay open forever).
        deadline = HEADER_TIMEOUT + 30
        assert all(closed_by_server(s, deadline) for s in socks)
    finally:
        for sock in socks:
            sock.close()


def test_slow_body_is_closed(gateway: str) -> None:
    port = httpx.URL(gateway).port
    assert port is not None
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"mess")
    [sock] = trickle(port, 1, head)
    with sock:
        assert closed_by_server(sock, HEADER_TIMEOUT + 30)


def test_connections_past_the_cap_get_503(tmp_path: Path) -> None:
    process, base = start_gateway(tmp_path, LOCALINFER_MAX_CONNECTIONS="20")
    try:
        port = httpx.URL(base).port
        assert port is not None
        idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(20)]
        try:
            response = httpx.get(base + "/health", trust_env=False, timeout=30)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "too_many_connections"
        finally:
            for sock in idle:
                sock.close()
        # Once they are gone, the gateway answers again.
        deadline = time.monotonic() + 30
        while httpx.get(base + "/health", trust_env=False, timeout=30).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)
