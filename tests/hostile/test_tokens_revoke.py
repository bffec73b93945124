"""Revoking a client token never opens the gateway, and ends that token's open streams
(hardening round 2, §3)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localinfer.cli.main import main
from localinfer.tokens import TokenStore
from localinfer.types import ChatChunk, ChatRequest, ChatStream, ChunkChoice, Delta
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import serve_gateway
from tests.support.servers import RunApp

pytestmark = pytest.mark.hostile

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
CHUNKS = 600  # paced at PACE s: a minute of answer if nothing stops it
PACE = 0.1


def paced_backend(delay: float = PACE, chunks: int = CHUNKS) -> FakeBackend:
    backend = FakeBackend("fake-chat", tier="embedded")
    backend.enqueue(Script(chunks=[f"t{i} " for i in range(chunks)], delay=delay))
    return backend


def auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_revoking_the_last_token_keeps_the_gateway_closed(
        isolated_environment: Path, run_app: RunApp,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    home = isolated_environment
    alice = TokenStore(home).add("alice")
    gateway = serve_gateway(run_app, home)
    with httpx.Client(base_url=gateway, trust_env=False, timeout=30) as keep_alive:
        assert keep_alive.get("/v1/models", headers=auth(alice)).status_code == 200
        with caplog.at_level(logging.WARNING, logger="localinfer.gateway"):
            assert main(["tokens", "rm", "alice"]) == 0  # the last one
            capsys.readouterr()
            # The same keep-alive connection, without a token and with the revoked one.
            assert keep_alive.get("/v1/models").status_code == 401
            assert keep_alive.get("/v1/models", headers=auth(alice)).status_code == 401
            assert keep_alive.post("/v1/chat/completions", json=BODY).status_code == 401
    # New connections, both dialects.
    for path in ("/v1/models", "/api/tags"):
        assert httpx.get(gateway + path, trust_env=False, timeout=30).status_code == 401
    assert httpx.get(gateway + "/health", trust_env=False, timeout=30).status_code == 200
    assert any("lets nobody in" in r.getMessage() for r in caplog.records), caplog.text
    # A token added again is let in, and nobody else.
    bob = TokenStore(home).add("bob")
    assert httpx.get(gateway + "/v1/models", headers=auth(bob), trust_env=False,
                     timeout=30).status_code == 200
    assert httpx.get(gateway + "/v1/models", trust_env=False, timeout=30).status_code == 401


def test_a_token_replaced_under_the_same_name_refuses_the_old_secret(
        isolated_environment: Path, run_app: RunApp) -> None:
    home = isolated_environment
    old = TokenStore(home).add("alice")
    gateway = serve_gateway(run_app, home)
    new = TokenStore(home).add("alice")
    assert httpx.get(gateway + "/v1/models", headers=auth(old), trust_env=False,
                     timeout=30).status_code == 401
    assert httpx.get(gateway + "/v1/models", headers=auth(new), trust_env=False,
                     timeout=30).status_code == 200


def sse_events(response: httpx.Response) -> Iterator[dict[str, object] | str]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            yield data if data == "[DONE]" else json.loads(data)


def test_an_open_stream_ends_within_one_chunk_of_the_revocation(
        isolated_environment: Path, run_app: RunApp) -> None:
    home = isolated_environment
    store = TokenStore(home)
    alice = store.add("alice")
    bob = store.add("bob")  # bob stays: the gateway keeps serving him
    backend = paced_backend()
    gateway = serve_gateway(run_app, home, [backend])
    after: list[object] = []
    revoked_at = None
    with httpx.stream("POST", gateway + "/v1/chat/completions", json={**BODY, "stream": True},
                      headers=auth(alice), trust_env=False, timeout=30) as response:
        assert response.status_code == 200
        for n, event in enumerate(sse_events(response)):
            if revoked_at is None and n == 3:
                assert store.remove("alice")  # as `localinfer tokens rm alice` does
                revoked_at = time.monotonic()
            elif revoked_at is not None:
                after.append(event)
    assert revoked_at is not None
    elapsed = time.monotonic() - revoked_at
    assert after[-1] == "[DONE]"
    error = after[-2]
    assert isinstance(error, dict) and "revoked" in json.dumps(error), after
    # Within one chunk: one may have been on the wire already (85 went through before).
    assert len(after) - 2 <= 2, after
    assert elapsed < 10, elapsed  # generous for a loaded machine; a minute if unstopped
    assert httpx.get(gateway + "/v1/models", headers=auth(bob), trust_env=False,
                     timeout=30).status_code == 200


class SilentAfterFirst(FakeBackend):
    """Sends one chunk, then nothing for a minute."""

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(content="first"))])
        await asyncio.sleep(60)
        yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="stop")])


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_a_silent_stream_ends_soon_after_the_revocation(
        isolated_environment: Path, run_app: RunApp, path: str) -> None:
    home = isolated_environment
    alice = TokenStore(home).add("alice")
    gateway = serve_gateway(run_app, home, [SilentAfterFirst("fake-chat", tier="embedded")])
    lines: list[str] = []
    revoked_at = 0.0
    with httpx.stream("POST", gateway + path, json={**BODY, "stream": True},
                      headers=auth(alice), trust_env=False, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(line)
            if not revoked_at:
                assert TokenStore(home).remove("alice")
                revoked_at = time.monotonic()
    elapsed = time.monotonic() - revoked_at
    assert elapsed < 10, elapsed  # generous for a loaded machine; the upstream is silent 60 s
    assert "revoked" in "\n".join(lines), lines
