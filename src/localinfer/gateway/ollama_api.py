"""Ollama's native routes, so Ollama-only apps (and the ``ollama`` Python client) work
unchanged: ``/api/chat`` (NDJSON stream by default), ``/api/embed``, ``/api/embeddings``,
``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/version``.

Shapes follow Ollama's API docs (docs/api.md) and the ``ollama`` client's pydantic
types; requests are translated to OpenAI's shape and served by the same router.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..errors import LocalInferError
from ..types import ChatChunk, ChatMessage, ChatRequest, ChatResponse, ModelInfo
from .context import Gateway
from .errors import from_validation, ollama_error
from .honest import (
    ModelFiles,
    check_dimensions,
    digest_and_size,
    find_model,
    model_files,
    not_found,
    ollama_model_name,
    refuse_unsupported,
)
from .openai_api import listing_headers
from .streaming import ChunkStreamResponse, StreamEncoder, peek
from .wire import JSONBody, check_model_name, dumps, read_model, served_headers

# The Ollama API level these routes implement (apps gate features on it: /api/embed
# arrived in 0.3, tool calls in 0.3, structured outputs in 0.5).
OLLAMA_API_VERSION = "0.6.0"

# Ollama `options` → OpenAI request fields. Unknown options are dropped: they tune
# Ollama's runner (num_ctx, num_gpu, ...) and mean nothing to other backends.
OPTION_FIELDS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_predict": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repeat_penalty",
    "min_p": "min_p",
}

# Ollama reports why generation stopped as "stop" or "length".
DONE_REASONS = {"length": "length"}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OllamaFunctionCall(_Open):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class OllamaToolCall(_Open):
    function: OllamaFunctionCall


class OllamaMessage(_Open):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None


class OllamaOptions(_Open):
    """The ``options`` we translate, typed and bounded like their OpenAI targets, so a
    bad value is a 400 naming ``options.X``. Other options (num_ctx, num_gpu, …) tune
    Ollama's own runner and are accepted and dropped."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    num_predict: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repeat_penalty: float | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)


class OllamaChatRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[OllamaMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    format: str | dict[str, Any] | None = None
    options: OllamaOptions | None = None
    # Ollama streams unless told not to.
    stream: bool = True
    keep_alive: float | str | None = None


class OllamaEmbedRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str]
    truncate: bool | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    dimensions: int | None = Field(default=None, ge=1, le=65536)


class OllamaEmbeddingsRequest(_Open):
    model: str = Field(min_length=1)
    prompt: str = ""


class OllamaModelRequest(_Open):
    model: str | None = None
    name: str | None = None  # older clients send `name`

    @property
    def wanted(self) -> str:
        return self.model or self.name or ""


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# -- Ollama → OpenAI ----------------------------------------------------------------


def openai_message(m: OllamaMessage, index: int) -> ChatMessage:
    content: str | list[dict[str, Any]] | None = m.content
    if m.images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": m.content or ""}]
        parts += [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{img}"}}
                  for img in m.images]
        content = parts
    message = ChatMessage(role=m.role, content=content)
    if m.tool_calls:
        message.tool_calls = [
            {"id": f"call_{index}_{i}", "type": "function",  # type: ignore[misc]
             "function": {"name": c.function.name,
                          "arguments": json.dumps(c.function.arguments)}}
            for i, c in enumerate(m.tool_calls)]
    if m.role == "tool" and m.tool_name:
        message.name = m.tool_name
    return message


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    return None


def chat_fields(options: OllamaOptions | None,
                fmt: str | dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's ``options`` and ``format`` as OpenAI request fields."""
    fields: dict[str, Any] = {}
    values = options.model_dump(exclude_none=True) if options else {}
    for option, value in values.items():
        target = OPTION_FIELDS.get(option)
        if target is not None:
            fields[target] = value
    if isinstance(fields.get("max_tokens"), int) and fields["max_tokens"] <= 0:
        del fields["max_tokens"]  # Ollama's -1 / -2 mean "no limit"
    rf = response_format(fmt)
    if rf is not None:
        fields["response_format"] = rf
    return fields


def build_chat(body: dict[str, Any]) -> ChatRequest:
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:  # whatever the translation let through: still the caller's
        raise from_validation(exc) from None


def to_chat_request(req: OllamaChatRequest) -> ChatRequest:
    fields = chat_fields(req.options, req.format)
    if req.tools:
        fields["tools"] = req.tools
    messages = [openai_message(m, i) for i, m in enumerate(req.messages)]
    return build_chat({"model": req.model, "messages": messages, **fields,
                       "stream": req.stream})


# -- OpenAI → Ollama ----------------------------------------------------------------


def ollama_tool_calls(calls: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for call in calls:
        data = call if isinstance(call, dict) else call.model_dump()
        fn = data.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            args = orjson.loads(raw) if isinstance(raw, str) else raw
        except orjson.JSONDecodeError:
            args = {"_raw": raw}  # a model wrote broken JSON; keep it visible
        out.append({"function": {"name": fn.get("name") or "",
                                 "arguments": args if isinstance(args, dict) else {"_raw": raw}}})
    return out


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


def details(m: ModelInfo) -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf" if m.tier == "embedded" else "",
            "family": "", "families": None, "parameter_size": "", "quantization_level": ""}


def tag(m: ModelInfo, files: ModelFiles | None = None) -> dict[str, Any]:
    digest, size = digest_and_size(m, files or {})
    return {"name": m.id, "model": m.id, "modified_at": "1970-01-01T00:00:00Z", "size": size,
            "digest": digest, "details": details(m),
            "localinfer": {"backend": m.backend, "tier": m.tier,
                           "capabilities": list(m.capabilities)}}


async def ollama_answer(gw: Gateway, request: Request, chat: ChatRequest, sensitive: bool, *,
                        stream: bool, encoder: StreamEncoder,
                        whole: Callable[[ChatResponse, Timing], dict[str, Any]]) -> Response:
    """How every Ollama generation route answers: NDJSON frames after the first chunk
    was peeked (so early failures are HTTP errors), or one JSON object built by
    ``whole`` from the finished reply."""
    if stream:
        chunks = await gw.stream(chat, sensitive)
        first = await peek(chunks, gw.timeout)
        backend, tier = (first.backend, first.tier) if first else (None, None)
        return ChunkStreamResponse(first, chunks, encoder, served_headers(backend, tier),
                                   gw.timeout)
    timing = Timing()
    reply = await gw.until_disconnect(request, lambda: gw.answer(chat, sensitive))
    if reply is None:
        return Response(status_code=499)
    return JSONBody(whole(reply, timing), headers=served_headers(reply.backend, reply.tier))


class OllamaRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/api/embeddings", self.embeddings, methods=["POST"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/version", self.version, methods=["GET"]),
        ]

    async def chat(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, OllamaChatRequest, gw.settings.max_body_bytes)
        check_model_name(req.model, required=True)
        chat = to_chat_request(req)
        chat.model = await ollama_model_name(gw, req.model)
        sensitive = gw.is_sensitive(request)
        await refuse_unsupported(gw, chat, sensitive)
        return await ollama_answer(
            gw, request, chat, sensitive, stream=req.stream, encoder=NDJSONEncoder(req.model),
            whole=lambda reply, timing: chat_reply(reply, req.model, timing))

    async def embed(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, OllamaEmbedRequest, gw.settings.max_body_bytes)
        check_model_name(req.model, required=True)
        texts = [req.input] if isinstance(req.input, str) else req.input
        timing = Timing()
        if not texts:
            return JSONBody({"model": req.model, "embeddings": [], **timing.stats(0, 0)})
        name = await ollama_model_name(gw, req.model)
        reply = await gw.until_disconnect(
            request, lambda: gw.client.embed(texts, model=name,
                                             sensitive=gw.is_sensitive(request)))
        if reply is None:
            return Response(status_code=499)
        check_dimensions(req.dimensions, reply.vectors)
        usage = reply.usage.prompt_tokens if reply.usage else 0
        stats = timing.stats(usage, 0)
        return JSONBody({"model": req.model, "embeddings": reply.vectors,
                         "total_duration": stats["total_duration"], "load_duration": 0,
                         "prompt_eval_count": usage},
                        headers=served_headers(reply.backend, reply.tier))

    async def embeddings(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, OllamaEmbeddingsRequest, gw.settings.max_body_bytes)
        check_model_name(req.model, required=True)
        name = await ollama_model_name(gw, req.model)
        reply = await gw.until_disconnect(
            request, lambda: gw.client.embed([req.prompt], model=name,
                                             sensitive=gw.is_sensitive(request)))
        if reply is None:
            return Response(status_code=499)
        return JSONBody({"embedding": reply.vectors[0] if reply.vectors else []},
                        headers=served_headers(reply.backend, reply.tier))

    async def tags(self, request: Request) -> Response:
        models = await self.gw.client.models()
        files = await model_files(self.gw)
        return JSONBody({"models": [tag(m, files) for m in models]},
                        headers=listing_headers(models))

    async def ps(self, request: Request) -> Response:
        models = [m for m in await self.gw.client.models() if m.loaded]
        files = await model_files(self.gw)
        running = [{**tag(m, files), "expires_at": "2999-01-01T00:00:00Z", "size_vram": 0}
                   for m in models]
        return JSONBody({"models": running}, headers=listing_headers(models))

    async def show(self, request: Request) -> Response:
        req = await read_model(request, OllamaModelRequest, self.gw.settings.max_body_bytes)
        name = check_model_name(req.wanted, required=True) or ""
        models = await self.gw.client.models()
        m = find_model(models, name, ollama=True)
        if m is None:
            raise not_found(name, models)
        caps = ["completion" if c == "chat" else "embedding" for c in m.capabilities]
        return JSONBody({"modelfile": "", "parameters": "", "template": "",
                         "details": details(m), "model_info": {},
                         "capabilities": caps, "modified_at": "1970-01-01T00:00:00Z"},
                        headers=served_headers(m.backend, m.tier))

    async def version(self, request: Request) -> Response:
        return JSONBody({"version": OLLAMA_API_VERSION, "localinfer": __version__})
