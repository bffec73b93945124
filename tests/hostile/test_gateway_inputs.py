"""Client mistakes are 4xx with the dialect's error JSON, never a 5xx (hardening §3, §5)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from localinfer.client import AsyncClient
from localinfer.gateway import create_app
from localinfer.settings import Settings
from tests.gateway_harness import serve_gateway
from tests.support.servers import RunApp

pytestmark = pytest.mark.hostile

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path) -> str:
    return serve_gateway(run_app, tmp_path)


@pytest.mark.parametrize(("options", "param"), [
    ({"temperature": "hot"}, "options.temperature"),
    ({"temperature": 5}, "options.temperature"),
    ({"top_p": -1}, "options.top_p"),
    ({"seed": "x"}, "options.seed"),
    ({"stop": 5}, "options.stop"),
    ({"num_predict": "many"}, "options.num_predict"),
    ({"top_k": -3}, "options.top_k"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_bad_ollama_options_are_400(gateway: str, options: dict[str, Any], param: str,
                                    stream: bool) -> None:
    body = {"model": "fake-model", "messages": MESSAGES, "options": options, "stream": stream}
    response = httpx.post(gateway + "/api/chat", json=body, trust_env=False, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str)  # Ollama's shape: {"error": "..."}
    assert param in error


def test_unknown_ollama_options_are_accepted(gateway: str) -> None:
    body = {"model": "fake-model", "messages": MESSAGES, "stream": False,
            "options": {"num_ctx": 4096, "num_gpu": 1, "temperature": 0.5}}
    response = httpx.post(gateway + "/api/chat", json=body, trust_env=False, timeout=30)
    assert response.status_code == 200, response.text


def raw_request(base: str, head: bytes) -> tuple[int, bytes]:
    url = httpx.URL(base)
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    status = int(data.split(b" ", 2)[1]) if data else 0
    return status, data


@pytest.mark.parametrize("headers", [
    b"Host: 127.0.0.1\r\nHost: evil.com\r\n",
    b"Host: evil.com\r\nHost: 127.0.0.1\r\n",
    b"Host: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\nOrigin: http://evil.com\r\n",
    b"Host: 127.0.0.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n",
])
def test_repeated_single_headers_are_400(gateway: str, headers: bytes) -> None:
    status, data = raw_request(gateway, b"GET /v1/models HTTP/1.1\r\n" + headers +
                               b"Connection: close\r\n\r\n")
    assert status == 400, data[:300]


def test_one_host_is_fine(gateway: str) -> None:
    status, _ = raw_request(gateway, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     b"Connection: close\r\n\r\n")
    assert status == 200


# -- a prompt longer than the context window: the real embedded engine --------------------

@pytest.fixture
def small_context_gateway(run_app: RunApp, tmp_path: Path) -> str:
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded_context=256,
                        embedded_threads=1)
    return run_app(create_app(settings, AsyncClient(settings)))


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("shape", ["one long prompt", "ten thousand messages"])
def test_context_overflow_is_400_in_both_dialects(small_context_gateway: str,
                                                  shape: str) -> None:
    if shape == "one long prompt":
        messages = [{"role": "user", "content": "word " * 200_000}]  # 1 MB
    else:
        messages = [{"role": "user", "content": f"message {i}"} for i in range(10_000)]
    openai = httpx.post(small_context_gateway + "/v1/chat/completions", trust_env=False,
                        json={"messages": messages, "max_tokens": 4}, timeout=300)
    assert openai.status_code == 400, openai.text
    error = openai.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "256" in error["message"]  # the limit, and the count, are named
    ollama = httpx.post(small_context_gateway + "/api/chat", trust_env=False, timeout=300,
                        json={"model": "smollm2", "messages": messages, "stream": True})
    assert ollama.status_code == 400, ollama.text
    assert "maximum context length is 256 tokens" in ollama.json()["error"]
