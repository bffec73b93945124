"""A fake backend you enqueue answers into, for router and client unit tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Self

from localinfer.backends.base import Backend
from localinfer.errors import BackendError
from localinfer.types import (
    ChatChunk,
    ChatRequest,
    ChatStream,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ServerInfo,
    Tier,
)


@dataclass
class Script:
    """One scripted answer: chunks of text, or a failure before/after some chunks."""

    chunks: list[str] = field(default_factory=lambda: ["hello", " world"])
    fail_before: bool = False
    fail_after: int | None = None
    delay: float = 0.0


class FakeBackend(Backend):
    supports_embeddings = True

    def __init__(self, name: str, tier: Tier = "local", models: list[ModelInfo] | None = None,
                 model_ids: tuple[str, ...] = ("fake-model",)) -> None:
        self.name = name
        self.kind = "fake"
        self.tier = tier
        self._models = models or [ModelInfo(id=m, backend=name, tier=tier) for m in model_ids]
        self.scripts: list[Script] = []
        self.calls: list[tuple[str, str]] = []
        self.closed_streams = 0

    def enqueue(self, script: Script | None = None) -> Self:
        self.scripts.append(script or Script())
        return self

    async def models(self) -> list[ModelInfo]:
        return list(self._models)

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        self.calls.append(("chat", model))
        script = self.scripts.pop(0) if self.scripts else Script()
        if script.fail_before:
            raise BackendError(f"{self.name} refused", backend=self.name)
        try:
            for i, text in enumerate(script.chunks):
                if script.fail_after is not None and i == script.fail_after:
                    raise BackendError(f"{self.name} died", backend=self.name,
                                       before_first_token=False)
                if script.delay:
                    await asyncio.sleep(script.delay)
                yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(content=text))])
            yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="stop")])
        finally:
            self.closed_streams += 1

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        self.calls.append(("embed", model))
        return EmbeddingResponse(model=model, data=[
            Embedding(index=i, embedding=[float(len(t)), 1.0]) for i, t in enumerate(request.texts)
        ])


class StaticDiscovery:
    """Stands in for Discovery: returns the servers it was given."""

    def __init__(self, servers: list[ServerInfo] | None = None) -> None:
        self._servers = servers or []
        self.invalidated = 0

    def invalidate(self) -> None:
        self.invalidated += 1

    async def servers(self, *, refresh: bool = False) -> list[ServerInfo]:
        return list(self._servers)
