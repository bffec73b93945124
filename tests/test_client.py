"""Client and AsyncClient share one logic; the sync facade streams and cancels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer import AsyncClient, Client, Settings
from localinfer.backends.base import Backend
from localinfer.errors import ModelNotFound, NoBackend
from localinfer.types import ChatResponse, ModelInfo
from tests.fake_backend import FakeBackend, Script


def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, scan_default_ports=False, servers=[])


def factory(backend: Backend):  # type: ignore[no-untyped-def]
    async def make() -> Backend:
        return backend
    return make


async def test_async_chat_prompt_and_system(tmp_path: Path) -> None:
    fake = FakeBackend("embedded", tier="embedded").enqueue()
    async with AsyncClient(settings(tmp_path), embedded=[factory(fake)]) as client:
        reply = await client.chat("hi", system="be brief")
        assert isinstance(reply, ChatResponse)
        assert (reply.text, reply.backend, reply.tier) == ("hello world", "embedded", "embedded")


async def test_async_stream(tmp_path: Path) -> None:
    fake = FakeBackend("embedded", tier="embedded").enqueue(Script(chunks=["a", "b"]))
    async with AsyncClient(settings(tmp_path), embedded=[factory(fake)]) as client:
        stream = await client.chat("hi", stream=True)
        texts = [c.text async for c in stream]
    assert "".join(texts) == "ab"


def test_sync_chat_stream_embed_models(tmp_path: Path) -> None:
    model = ModelInfo(id="fake-model", backend="embedded", tier="embedded",
                      capabilities=["chat", "embeddings"])
    fake = FakeBackend("embedded", tier="embedded", models=[model])
    fake.enqueue().enqueue(Script(chunks=["x", "y"]))
    with Client(settings(tmp_path), embedded=[factory(fake)]) as client:
        reply = client.chat(messages=[{"role": "user", "content": "hi"}])
        assert isinstance(reply, ChatResponse) and reply.text == "hello world"
        stream = client.chat("again", stream=True)
        assert isinstance(stream, Iterator)
        assert [c.text for c in stream][:2] == ["x", "y"]
        assert client.embed(["abc"]).vectors == [[3.0, 1.0]]
        assert [m.id for m in client.models()] == ["fake-model"]


def test_sync_stream_close_cancels_backend_stream(tmp_path: Path) -> None:
    fake = FakeBackend("embedded", tier="embedded").enqueue(
        Script(chunks=[str(i) for i in range(1000)], delay=0.001))
    with Client(settings(tmp_path), embedded=[factory(fake)]) as client:
        stream = client.chat("hi", stream=True)
        assert isinstance(stream, Iterator)
        next(stream)
        stream.close()  # type: ignore[attr-defined]
        assert fake.closed_streams == 1
        assert fake.scripts == []


def test_sync_errors_surface_as_library_errors(tmp_path: Path) -> None:
    with Client(settings(tmp_path), embedded=[]) as client, pytest.raises(NoBackend):
        client.chat("hi")
    fake = FakeBackend("embedded", tier="embedded")
    with Client(settings(tmp_path), embedded=[factory(fake)]) as client, \
            pytest.raises(ModelNotFound):
        list(client.chat("hi", model="nope", stream=True))


def test_status_shape(tmp_path: Path) -> None:
    fake = FakeBackend("embedded", tier="embedded")
    with Client(settings(tmp_path), embedded=[factory(fake)]) as client:
        status = client.status(refresh=True)
    assert set(status) == {"servers", "embedded", "remote", "hosts", "exposure"}
    assert status["servers"] == []
    assert status["embedded"]["models"][0]["id"] == "fake-model"
