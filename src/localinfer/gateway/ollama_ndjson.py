"""How Ollama's generation routes answer: NDJSON lines (the default) or one JSON object,
with Ollama's nanosecond timings and stop reasons."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import LocalInferError
from ..types import ChatChunk, ChatRequest, ChatResponse
from .context import Gateway
from .errors import ollama_error
from .honest import ollama_names
from .ollama_translate import ollama_tool_calls
from .streaming import ChunkStreamResponse, StreamEncoder
from .wire import JSONBody, dumps, served_headers

# Ollama reports why generation stopped as "stop" or "length".
DONE_REASONS = {"length": "length"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Timing:
    """Ollama reports durations in nanoseconds: total, prompt (to first token), eval."""

    def __init__(self) -> None:
        self.start = time.perf_counter_ns()
        self.first: int | None = None

    def mark_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter_ns()

    def stats(self, prompt_tokens: int, eval_tokens: int) -> dict[str, int]:
        end = time.perf_counter_ns()
        first = self.first or end
        return {"total_duration": end - self.start, "load_duration": 0,
                "prompt_eval_count": prompt_tokens, "prompt_eval_duration": first - self.start,
                "eval_count": eval_tokens, "eval_duration": end - first}


def chat_reply(reply: ChatResponse, model: str, timing: Timing) -> dict[str, Any]:
    choice = reply.choices[0] if reply.choices else None
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if choice is not None and choice.message.tool_calls:
        message["tool_calls"] = ollama_tool_calls(list(choice.message.tool_calls))
    usage = reply.usage
    finish = choice.finish_reason if choice else None
    return {"model": model, "created_at": now_iso(), "message": message, "done": True,
            "done_reason": DONE_REASONS.get(finish or "", "stop"),
            **timing.stats(usage.prompt_tokens if usage else 0,
                           usage.completion_tokens if usage else 0)}


class NDJSONEncoder:
    """Ollama's stream: one JSON object per line; the last has ``done: true``, the stop
    reason and counts. Tool calls arrive whole in the final message, as Ollama sends
    them, because OpenAI streams their arguments in pieces."""

    media_type = "application/x-ndjson"

    def __init__(self, model: str) -> None:
        self.model = model
        self.timing = Timing()
        self.pieces = 0
        self.finish: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens: int | None = None
        self.calls: dict[int, dict[str, Any]] = {}

    def chunk(self, chunk: ChatChunk) -> bytes:
        if chunk.usage is not None:
            self.prompt_tokens = chunk.usage.prompt_tokens
            self.completion_tokens = chunk.usage.completion_tokens
        text = chunk.text
        for choice in chunk.choices:
            self.finish = choice.finish_reason or self.finish
            for delta in choice.delta.tool_calls or []:
                self._merge_call(delta)
        if not text:
            return b""
        self.timing.mark_first()
        self.pieces += 1
        return dumps({"model": self.model, "created_at": now_iso(), **self.piece(text),
                      "done": False}) + b"\n"

    def piece(self, text: str) -> dict[str, Any]:
        """What one piece of text is in this route's lines (``/api/chat``: a message)."""
        return {"message": {"role": "assistant", "content": text}}

    def final(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if self.calls:
            message["tool_calls"] = ollama_tool_calls([self.calls[i] for i in sorted(self.calls)])
        return {"message": message}

    def _merge_call(self, delta: dict[str, Any]) -> None:
        slot = self.calls.setdefault(int(delta.get("index") or 0),
                                     {"function": {"name": "", "arguments": ""}})
        fn = delta.get("function") or {}
        slot["function"]["name"] += fn.get("name") or ""
        slot["function"]["arguments"] += fn.get("arguments") or ""

    def end(self) -> bytes:
        eval_count = self.completion_tokens if self.completion_tokens is not None else self.pieces
        return dumps({"model": self.model, "created_at": now_iso(), **self.final(),
                      "done": True, "done_reason": DONE_REASONS.get(self.finish or "", "stop"),
                      **self.timing.stats(self.prompt_tokens, eval_count)}) + b"\n"

    def error(self, exc: LocalInferError) -> bytes:
        return dumps(ollama_error(exc)) + b"\n"


async def ollama_answer(gw: Gateway, request: Request, chat: ChatRequest, sensitive: bool, *,
                        stream: bool, encoder: StreamEncoder,
                        whole: Callable[[ChatResponse, Timing], dict[str, Any]]) -> Response:
    """How every Ollama generation route answers: NDJSON frames after the first chunk
    was peeked (so early failures are HTTP errors), or one JSON object built by
    ``whole`` from the finished reply. ``chat.model`` is resolved with its Ollama
    spellings (``name:latest``) in the router's one step."""
    names = ollama_names(chat.model or "")
    if stream:
        chunks = await gw.stream(chat, sensitive, names)
        first = await gw.peek(request, chunks)
        backend, tier = (first.backend, first.tier) if first else (None, None)
        return ChunkStreamResponse(first, chunks, encoder, served_headers(backend, tier),
                                   gw.timeout)
    timing = Timing()
    reply = await gw.until_disconnect(request, lambda: gw.answer(chat, sensitive, names))
    if reply is None:
        return Response(status_code=499)
    return JSONBody(whole(reply, timing), headers=served_headers(reply.backend, reply.tier))
