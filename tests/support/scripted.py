"""Scripted stand-ins for a model: a Client answering with a set text (the rag answer
tests) and a backend that streams scripted OpenAI tool calls (the tool-loop tests; the
bundled 135M model cannot be relied on to call tools)."""

from __future__ import annotations

import json
from typing import Any

from localinfer.types import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
)
from tests.fake_backend import FakeBackend


class ScriptedChat:
    """Stands in for the Client: records the request, answers with a set text."""

    def __init__(self, answer: str | None = None, error: Exception | None = None) -> None:
        self.answer = answer
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def chat(self, *, messages: Any, model: str | None = None, sensitive: bool = False,
             **options: Any) -> ChatResponse:
        self.calls.append({"messages": messages, "model": model, "sensitive": sensitive,
                           **options})
        if self.error:
            raise self.error
        response = ChatResponse(model="scripted", choices=[Choice(
            message=ChatMessage(role="assistant", content=self.answer))])
        return response.served_by("scripted", "embedded")


Turn = tuple[str, Any]  # ("text", "…") or ("tools", [(name, arguments_json), …])


class ToolCallingBackend(FakeBackend):
    """Answers each request with the next scripted turn; a "tools" turn streams tool-call
    deltas the way OpenAI-compatible servers do (id and name first, arguments in pieces)."""

    def __init__(self, turns: list[Turn]) -> None:
        super().__init__("embedded", tier="embedded")
        self.turns = list(turns)
        self.requests: list[ChatRequest] = []

    async def stream_chat(self, request: ChatRequest, model: str):  # type: ignore[no-untyped-def,override]
        self.requests.append(request.model_copy(deep=True))
        kind, payload = self.turns.pop(0) if self.turns else ("text", "(script ended)")
        if kind == "text":
            yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(content=payload))])
            yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="stop")])
            return
        for index, (name, arguments) in enumerate(payload):
            yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(tool_calls=[{
                "index": index, "id": f"call_{len(self.requests)}_{index}", "type": "function",
                "function": {"name": name, "arguments": ""}}]))])
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(tool_calls=[{
                    "index": index, "function": {"arguments": piece}}]))])
        yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="tool_calls")])


def code_args(code: str, **extra: Any) -> str:
    return json.dumps({"code": code, **extra})
