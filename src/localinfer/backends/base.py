"""The backend contract: a model list, chat (streamed and not), embeddings.

A backend implements ``models()``, ``stream_chat()`` and, where it can, ``embed()``
and a native non-streamed ``chat()``; the base class supplies the rest, and what it can
do as data (``capabilities``: its server kind's row, see capabilities.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from ..errors import BackendError
from ..types import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ChatStream,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    Tier,
    ToolCall,
    Usage,
)
from .capabilities import Capabilities, Need, capabilities_of


class Backend(ABC):
    name: str
    kind: str
    tier: Tier
    supports_embeddings: bool = False

    @abstractmethod
    async def models(self) -> list[ModelInfo]:
        """The models this backend can serve now."""

    async def capabilities(self, model: ModelInfo | None,
                           needs: frozenset[Need] = frozenset()) -> Capabilities:
        """What this backend can do for ``model`` (as it listed it; None: not listed).
        ``needs``: what the request relies on; a backend may find out a fact among them
        it does not know yet (a BackendError then fails over like a failed request)."""
        return capabilities_of(self.kind).for_model(model)

    @abstractmethod
    def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        """Yield chunks as they come. Raise BackendError(before_first_token=True) for
        failures before the first chunk, so the router can fail over."""

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        return await collect(self.stream_chat(request, model), model)

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        raise BackendError(f"{self.name} does not serve embeddings", backend=self.name)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections, workers."""


async def collect(chunks: AsyncIterator[ChatChunk], model: str) -> ChatResponse:
    """Fold a chunk stream into one ChatResponse (content, tool calls, finish, usage)."""
    text: list[str] = []
    tool_calls: dict[int, dict[str, object]] = {}
    finish: str | None = None
    usage: Usage | None = None
    first: ChatChunk | None = None
    async for chunk in chunks:
        first = first or chunk
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                _merge_tool_call(tool_calls, call)
    message = ChatMessage(role="assistant", content="".join(text), tool_calls=[
        ToolCall.model_validate(tool_calls[i]) for i in sorted(tool_calls)] or None)
    ids = {"id": first.id} if first is not None else {}
    return ChatResponse(model=first.model if first else model,
                        choices=[Choice(message=message, finish_reason=finish)], usage=usage,
                        **ids)


def _merge_tool_call(acc: dict[int, dict[str, object]], delta: dict[str, object]) -> None:
    index = int(delta.get("index", 0))  # type: ignore[call-overload]
    slot = acc.setdefault(index, {"id": None, "type": "function",
                                  "function": {"name": "", "arguments": ""}})
    if delta.get("id"):
        slot["id"] = delta["id"]
    fn = delta.get("function") or {}
    target = slot["function"]
    assert isinstance(target, dict) and isinstance(fn, dict)
    if fn.get("name"):
        target["name"] = str(target["name"]) + str(fn["name"])
    if fn.get("arguments"):
        target["arguments"] = str(target["arguments"]) + str(fn["arguments"])
