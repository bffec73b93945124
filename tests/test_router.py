"""Router: tier order, model resolution, failover before the first token, sensitivity."""

from __future__ import annotations

from typing import Any

import pytest

from localinfer.errors import BackendError, ModelNotFound, NoBackend, SensitiveDataBlocked
from localinfer.router import Candidate, RemoteTier
from localinfer.types import ChatRequest, EmbeddingRequest, ModelInfo
from tests.fake_backend import FakeBackend, Script
from tests.support.stub_router import StubRouter


class FakeRemote(RemoteTier):
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend

    async def candidates(self, model: str | None, capability: Any) -> list[Candidate]:
        models = await self.backend.models()
        return [Candidate(self.backend, m.id) for m in models
                if model is None or m.answers_to(model)]

    async def models(self) -> list[ModelInfo]:
        return await self.backend.models()


def req(model: str | None = None) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])


async def test_default_prefers_local_then_embedded() -> None:
    local = FakeBackend("ollama@x", model_ids=("llama3.1:latest",)).enqueue()
    embedded = FakeBackend("embedded", tier="embedded", model_ids=("smollm2",))
    router = StubRouter([local], [embedded])
    reply = await router.chat(req())
    assert (reply.backend, reply.tier, reply.text) == ("ollama@x", "local", "hello world")
    assert local.calls == [("chat", "llama3.1:latest")]
    assert embedded.calls == []


async def test_default_prefers_loaded_model() -> None:
    models = [ModelInfo(id="a", backend="s", tier="local", loaded=False),
              ModelInfo(id="b", backend="s", tier="local", loaded=True)]
    local = FakeBackend("s", models=models)
    await StubRouter([local], []).chat(req("default"))
    assert local.calls == [("chat", "b")]


async def test_falls_back_to_embedded_when_server_fails_before_first_token() -> None:
    local = FakeBackend("ollama@x").enqueue(Script(fail_before=True))
    embedded = FakeBackend("embedded", tier="embedded", model_ids=("smollm2",))
    router = StubRouter([local], [embedded])
    chunks = [c async for c in router.stream_chat(req())]
    assert {c.tier for c in chunks} == {"embedded"}
    assert router._discovery.invalidated == 1  # type: ignore[attr-defined]
    assert "".join(c.text for c in chunks) == "hello world"


async def test_failure_after_first_token_is_not_retried_elsewhere() -> None:
    local = FakeBackend("ollama@x").enqueue(Script(chunks=["a", "b", "c"], fail_after=1))
    embedded = FakeBackend("embedded", tier="embedded", model_ids=("smollm2",))
    seen: list[str] = []
    with pytest.raises(BackendError) as info:
        async for chunk in StubRouter([local], [embedded]).stream_chat(req()):
            seen.append(chunk.text)
    assert seen == ["a"]
    assert not info.value.before_first_token
    assert embedded.calls == []


async def test_explicit_model_goes_where_it_lives() -> None:
    a = FakeBackend("a", model_ids=("m1",))
    b = FakeBackend("b", model_ids=("m2",))
    reply = await StubRouter([a, b], []).chat(req("m2"))
    assert reply.backend == "b" and b.calls == [("chat", "m2")]


async def test_alias_resolves_ollama_name_without_latest() -> None:
    model = ModelInfo(id="llama3.1:latest", aliases=["llama3.1"], backend="o", tier="local")
    o = FakeBackend("o", models=[model])
    await StubRouter([o], []).chat(req("llama3.1"))
    assert o.calls == [("chat", "llama3.1:latest")]


async def test_unknown_model_lists_available_and_does_not_substitute() -> None:
    a = FakeBackend("a", model_ids=("m1",))
    e = FakeBackend("embedded", tier="embedded", model_ids=("smollm2",))
    with pytest.raises(ModelNotFound) as info:
        await StubRouter([a], [e]).chat(req("gpt-9"))
    assert info.value.available == ["m1", "smollm2"]
    assert "m1" in info.value.message and a.calls == [] and e.calls == []


async def test_no_backend_at_all_says_how_to_get_one() -> None:
    with pytest.raises(NoBackend, match="ollama serve"):
        await StubRouter([], []).chat(req())


async def test_remote_is_last_and_never_for_sensitive() -> None:
    remote = FakeBackend("remote:acme", tier="remote", model_ids=("big",))
    router = StubRouter([], [], FakeRemote(remote))
    reply = await router.chat(req())
    assert reply.tier == "remote"
    with pytest.raises(SensitiveDataBlocked):
        await router.chat(req(), sensitive=True)
    with pytest.raises(SensitiveDataBlocked, match="exists only at a remote provider"):
        await router.chat(req("big"), sensitive=True)
    with pytest.raises(ModelNotFound):
        await router.chat(req("nowhere"), sensitive=True)
    assert remote.calls == [("chat", "big")]


async def test_local_beats_remote_even_when_remote_listed() -> None:
    local = FakeBackend("l", model_ids=("m",))
    remote = FakeBackend("r", tier="remote", model_ids=("m",))
    reply = await StubRouter([local], [], FakeRemote(remote)).chat(req("m"))
    assert reply.tier == "local" and remote.calls == []


async def test_default_embeddings_come_from_embedded_embedder() -> None:
    server = FakeBackend("o", models=[ModelInfo(id="nomic-embed-text", backend="o", tier="local",
                                                capabilities=["embeddings"])])
    embedder = FakeBackend("embedder", tier="embedded",
                           models=[ModelInfo(id="all-minilm-l6-v2", backend="embedder",
                                             tier="embedded", capabilities=["embeddings"])])
    router = StubRouter([server], [embedder])
    out = await router.embed(EmbeddingRequest(input=["ab", "c"]))
    assert out.backend == "embedder" and out.vectors == [[2.0, 1.0], [1.0, 1.0]]
    named = await router.embed(EmbeddingRequest(model="nomic-embed-text", input="x"))
    assert named.backend == "o"


async def test_closing_stream_early_closes_backend_stream() -> None:
    local = FakeBackend("l").enqueue(Script(chunks=["a", "b", "c", "d"]))
    stream = StubRouter([local], []).stream_chat(req())
    async for _ in stream:
        break
    await stream.aclose()
    assert local.closed_streams == 1
