"""A client that leaves stops its work (issue 26 §2): streamed requests whose client
hangs up before the first byte must not run on in llama.cpp.

The gateway serves a real llama.cpp server (``llama_server``, one slot); 30 clients send
a long-prompt stream and close their socket at once. Before the fix each ran to its end
upstream, one after another (216 s of queue in the issue's run). The event asserted is
llama.cpp's own: every slot idle (``/slots``) and staying idle — a queued abandoned task
would take the slot within milliseconds of the previous one ending. Latency is measured
in bench/bench_abandon.py, not asserted here.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from localinfer.assets.gguf import validate_gguf
from localinfer.client import AsyncClient
from localinfer.gateway import create_app
from localinfer.settings import Settings
from tests.support.servers import RunApp

pytestmark = [pytest.mark.hostile, pytest.mark.slow]

ABANDONED = 30
# ~1,000 tokens of prompt: seconds of prompt evaluation each on a loaded 2-core machine.
LONG_PROMPT = "Summarise the following notes. " + " ".join(
    f"Note {i}: the lighthouse keeper logged wind, rain and passing ships." for i in range(80))


def busy(server: str) -> int:
    slots = httpx.get(server + "/slots", timeout=30, trust_env=False).json()
    return sum(1 for slot in slots if slot.get("is_processing"))


def stays_idle(server: str, timeout: float, quiet: float = 3.0) -> bool:
    """Whether every slot becomes idle within ``timeout`` and stays idle for ``quiet``
    seconds of back-to-back polls (the 30 tasks, if still queued, would take it)."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        if busy(server) == 0:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet:
                return True
        else:
            idle_since = None
        time.sleep(0.05)
    return False


def abandon(base: str, body: bytes) -> None:
    """Send a whole request, then hang up before reading a byte."""
    url = httpx.URL(base)
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_abandoned_streams_free_every_slot(run_app: RunApp, tmp_path: Path,
                                           llama_server: str, bundled_gguf: Path) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded=False,
                        servers=[llama_server])
    gateway = run_app(create_app(settings, AsyncClient(settings)))
    # Warm: discovery has listed the server, so every abandoned request reaches it.
    warm = httpx.post(gateway + "/v1/chat/completions", timeout=120, trust_env=False, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert warm.status_code == 200, warm.text
    # End-of-generation forbidden, and each prompt different from its first token
    # (llama.cpp would reuse a cached prefix): every task is long if it runs.
    eos = validate_gguf(bundled_gguf).metadata["tokenizer.ggml.eos_token_id"]
    for i in range(ABANDONED):
        abandon(gateway, orjson.dumps({
            "stream": True, "max_tokens": 300, "temperature": 1.0,
            "logit_bias": {str(eos): -100.0},
            "messages": [{"role": "user", "content": f"{i}. {LONG_PROMPT}"}]}))
    # Before the fix: 30 × (prompt + 300 tokens) ran one after another in the slot.
    assert stays_idle(llama_server, timeout=90.0), "llama.cpp kept working for clients that left"
    after = httpx.post(gateway + "/v1/chat/completions", timeout=120, trust_env=False, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert after.status_code == 200, after.text
