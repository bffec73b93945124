"""Routing end to end: discovery finds servers on loopback, the router picks one, and
failures before the first token fall back to the embedded engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from localinfer import AsyncClient, Settings
from localinfer.errors import ModelNotFound
from localinfer.types import ChatChunk, ChatResponse
from tests.fakes.ollama import OllamaFake
from tests.support.servers import RunApp


def settings(home: Path, *servers: str) -> Settings:
    return Settings(home=home, scan_default_ports=False, servers=list(servers))


async def test_local_server_answers_before_embedded(tmp_path: Path, run_app: RunApp) -> None:
    fake = OllamaFake()
    base = run_app(fake.app)
    async with AsyncClient(settings(tmp_path, base)) as client:
        reply = await client.chat("where am I?")
        assert isinstance(reply, ChatResponse)
        assert reply.tier == "local" and reply.backend and reply.backend.startswith("ollama@")
        # Default picks the loaded model; the prompt arrives intact.
        assert reply.text == "ollama-fake: where am I?"
        named = await client.chat("hi", model="llama3.2")  # Ollama name without :latest
        assert isinstance(named, ChatResponse) and named.model.startswith("llama3.2")
        with pytest.raises(ModelNotFound) as info:
            await client.chat("hi", model="mistral")
        assert "smollm2:135m" in info.value.available
        assert "smollm2-135m-instruct" in info.value.available  # the embedded one too


@pytest.mark.integration
async def test_server_error_fails_over_to_embedded(tmp_path: Path, run_app: RunApp) -> None:
    fake = OllamaFake(fail="error")
    base = run_app(fake.app)
    async with AsyncClient(settings(tmp_path, base)) as client:
        stream = await client.chat("Say hi.", stream=True, max_tokens=8)
        assert isinstance(stream, AsyncIterator)
        chunks: list[ChatChunk] = [c async for c in stream]
    assert chunks and {c.tier for c in chunks} == {"embedded"}
    assert any(r.path == "/v1/chat/completions" for r in fake.requests)


@pytest.mark.integration
async def test_refused_server_fails_over_to_embedded(tmp_path: Path, refused_url: str) -> None:
    async with AsyncClient(settings(tmp_path, refused_url)) as client:
        reply = await client.chat("Say hi.", max_tokens=8)
    assert isinstance(reply, ChatResponse) and reply.tier == "embedded" and reply.text


@pytest.mark.integration
async def test_real_llama_server_serves_chat_and_stream(tmp_path: Path, llama_server: str) -> None:
    async with AsyncClient(settings(tmp_path, llama_server)) as client:
        reply = await client.chat("Say hi.", max_tokens=8, temperature=0)
        assert isinstance(reply, ChatResponse)
        assert reply.tier == "local" and reply.backend and reply.backend.startswith("llama.cpp@")
        assert reply.text and reply.usage and reply.usage.completion_tokens > 0
        stream = await client.chat("Count to three.", stream=True, max_tokens=8)
        assert isinstance(stream, AsyncIterator)
        texts = [c.text async for c in stream]
    assert "".join(texts).strip()
