"""OpenAI's legacy ``POST /v1/completions`` (editors' autocomplete still speaks it).

Each prompt is sent as one user message through the chat path, so the backend's chat
template wraps it: a text-completion model would continue the prompt verbatim, a chat
model here answers it. ``prompt`` may be a string or a list of strings (one choice
each, in order); ``echo`` puts the prompt before the answer; ``stop``, ``max_tokens``
(16 when omitted, as OpenAI's default), ``temperature``, ``top_p`` and ``seed`` are
the chat path's. Refused with a 400 naming the parameter: ``suffix`` (fill-in-the-middle),
token-id prompts, ``n``/``best_of`` > 1 and ``logprobs``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import LocalInferError
from ..request_fields import check_extras
from ..types import ChatChunk, ChatRequest, ChatStream, Usage, new_id
from .context import Gateway
from .errors import InvalidRequest, from_validation, openai_error
from .streaming import ChunkStreamResponse, wants_usage
from .wire import JSONBody, check_model_name, dumps, read_model, served_headers

# OpenAI's documented default for the legacy endpoint.
DEFAULT_MAX_TOKENS = 16


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]] = ""
    suffix: str | None = None
    echo: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    best_of: int | None = Field(default=None, ge=1, le=128)
    logprobs: int | None = Field(default=None, ge=0, le=5)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = None

    def prompts(self) -> list[str]:
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and not all(isinstance(p, str) for p in prompt):
            raise InvalidRequest("token-id prompts are not supported: send the text itself "
                                 "(a string or a list of strings)", param="prompt")
        return [p for p in prompt if isinstance(p, str)] or [""]


def refuse(req: CompletionRequest) -> None:
    if req.suffix:
        raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")
    for name in ("n", "best_of"):
        value = getattr(req, name)
        if value is not None and value > 1:
            raise InvalidRequest(f"{name}={value} (several choices per prompt) is not "
                                 "supported; send several requests", param=name)
    if req.logprobs is not None:
        raise InvalidRequest("logprobs is not supported", param="logprobs")


def chat_for(req: CompletionRequest, prompt: str) -> ChatRequest:
    fields = req.model_dump(include={"temperature", "top_p", "stop", "seed",
                                     "presence_penalty", "frequency_penalty"},
                            exclude_none=True)
    fields.update(check_extras("completions", req.model_extra))  # the allow-listed extensions
    try:
        return ChatRequest.model_validate({
            "model": req.model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS, "stream": req.stream, **fields})
    except ValidationError as exc:
        raise from_validation(exc) from None


def text_choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}


class CompletionSSEEncoder:
    """Chat chunks as ``text_completion`` events (choice ``index`` = the prompt's
    position), usage as OpenAI sends it (a last chunk with ``choices: []`` when
    ``include_usage``), then ``[DONE]``."""

    media_type = "text/event-stream"

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = new_id("cmpl")
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.prompt_tokens = self.completion_tokens = 0
        self.pieces = 0
        self.saw_usage = False

    def event(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        body: dict[str, Any] = {"id": self.id, "object": "text_completion",
                                "created": self.created, "model": self.model,
                                "choices": choices}
        if usage is not None:
            body["usage"] = usage.model_dump(mode="json")
        return b"data: " + dumps(body) + b"\n\n"

    def chunk(self, chunk: ChatChunk) -> bytes:
        index = int((chunk.model_extra or {}).get("prompt_index", 0))
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.saw_usage = True
            self.prompt_tokens += chunk.usage.prompt_tokens
            self.completion_tokens += chunk.usage.completion_tokens
        out = b""
        for choice in chunk.choices:
            text = choice.delta.content or ""
            if text:
                self.pieces += 1
            if text or choice.finish_reason:
                out += self.event([text_choice(index, text, choice.finish_reason)])
        return out

    def end(self) -> bytes:
        tail = b""
        if self.include_usage:
            prompt, completion = (self.prompt_tokens, self.completion_tokens) \
                if self.saw_usage else (0, self.pieces)
            tail = self.event([], Usage(prompt_tokens=prompt, completion_tokens=completion,
                                        total_tokens=prompt + completion))
        return tail + b"data: [DONE]\n\n"

    def error(self, exc: LocalInferError) -> bytes:
        return b"data: " + dumps(openai_error(exc)) + b"\n\ndata: [DONE]\n\n"


def echoed(chunk_model: str, index: int, text: str) -> ChatChunk:
    return ChatChunk.model_validate({"model": chunk_model, "prompt_index": index,
                                     "choices": [{"delta": {"content": text}}]})


def tagged(chunk: ChatChunk, index: int) -> ChatChunk:
    """``chunk`` with its prompt's index (an extra field; replies are not changed in place)."""
    return chunk.model_copy(update={"prompt_index": index})  # keeps backend, tier, host


async def chained(gw: Gateway, req: CompletionRequest, prompts: list[str],
                  first: ChatStream, sensitive: bool) -> AsyncGenerator[ChatChunk, None]:
    """One stream over every prompt in turn, each chunk tagged with its prompt's index."""
    stream: ChatStream | None = first
    try:
        for index, prompt in enumerate(prompts):
            if stream is None:
                stream = await gw.stream(chat_for(req, prompt), sensitive)
            if req.echo and prompt:
                lead = await anext(aiter(stream), None)
                echo = echoed(lead.model if lead else req.model or "", index, prompt)
                if lead is not None:
                    echo.served_by(lead.backend, lead.tier)
                yield echo
                if lead is not None:
                    yield tagged(lead, index)
            async for chunk in stream:
                yield tagged(chunk, index)
            await stream.aclose()
            stream = None
    finally:
        if stream is not None:
            await stream.aclose()


async def completions(gw: Gateway, request: Request) -> Response:
    req = await read_model(request, CompletionRequest, gw.settings.max_body_bytes)
    check_model_name(req.model)
    prompts = req.prompts()
    refuse(req)
    check_extras("completions", req.model_extra)
    sensitive = gw.is_sensitive(request)
    first_chat = chat_for(req, prompts[0])
    if req.stream:
        stream = chained(gw, req, prompts, await gw.stream(first_chat, sensitive), sensitive)
        first = await gw.peek(request, stream)
        backend, tier = (first.backend, first.tier) if first else (None, None)
        encoder = CompletionSSEEncoder(req.model or (first.model if first else ""),
                                       wants_usage(req.stream_options))
        return ChunkStreamResponse(first, stream, encoder, served_headers(backend, tier),
                                   gw.timeout)

    async def answer_all() -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        prompt_tokens = completion_tokens = 0
        served: tuple[str | None, str | None] = (None, None)
        model = req.model or ""
        for index, prompt in enumerate(prompts):
            reply = await gw.answer(first_chat if index == 0 else chat_for(req, prompt),
                                    sensitive)
            served = (reply.backend, reply.tier)
            model = reply.model or model
            finish = (reply.choices[0].finish_reason if reply.choices else None) or "stop"
            text = (prompt if req.echo else "") + reply.text
            choices.append(text_choice(index, text, finish))
            if reply.usage is not None:
                prompt_tokens += reply.usage.prompt_tokens
                completion_tokens += reply.usage.completion_tokens
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      total_tokens=prompt_tokens + completion_tokens)
        return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()),
                "model": model, "choices": choices, "usage": usage.model_dump(mode="json"),
                "_served": served}

    result = await gw.until_disconnect(request, answer_all)
    if result is None:
        return Response(status_code=499)
    backend, tier = result.pop("_served")
    return JSONBody(result, headers=served_headers(backend, tier))


def completion_routes(gw: Gateway) -> list[Route]:
    async def route(request: Request) -> Response:
        return await completions(gw, request)

    return [Route("/v1/completions", route, methods=["POST"])]
