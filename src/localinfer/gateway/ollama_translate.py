"""Ollama requests → OpenAI's shape (``options``, ``format``, messages with images and
tool calls), served by the same router; OpenAI tool calls → Ollama's (parsed arguments)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import ValidationError

from ..request_fields import check_extras
from ..types import ChatMessage, ChatRequest
from .errors import from_validation
from .ollama_requests import OllamaChatRequest, OllamaMessage, OllamaOptions

# Ollama `options` → OpenAI request fields. Ollama's runner options (num_ctx, num_gpu,
# ...) are dropped as documented in request_fields.DROPPED; any other option is refused.
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


def openai_message(m: OllamaMessage, index: int) -> ChatMessage:
    content: str | list[dict[str, Any]] | None = m.content
    if m.images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": m.content or ""}]
        parts += [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{img}"}}
                  for img in m.images]
        content = parts
    calls = [{"id": f"call_{index}_{i}", "type": "function",
              "function": {"name": c.function.name,
                           "arguments": json.dumps(c.function.arguments)}}
             for i, c in enumerate(m.tool_calls or ())]
    return ChatMessage.model_validate({
        "role": m.role, "content": content, "tool_calls": calls or None,
        "name": m.tool_name if m.role == "tool" and m.tool_name else None})


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
    if options is not None:  # runner options dropped as documented, the rest refused
        check_extras("ollama_options", options.model_extra, prefix="options.")
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
    if body.get("stream"):
        # Ollama's last line carries the counts: ask an upstream server for them too
        # (llama-server sends none in a stream otherwise).
        body = {**body, "stream_options": {"include_usage": True}}
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:  # whatever the translation let through: still the caller's
        raise from_validation(exc) from None


def to_chat_request(req: OllamaChatRequest) -> ChatRequest:
    check_extras("ollama", req.model_extra)
    fields = chat_fields(req.options, req.format)
    if req.tools:
        fields["tools"] = req.tools
    messages = [openai_message(m, i) for i, m in enumerate(req.messages)]
    return build_chat({"model": req.model, "messages": messages, **fields,
                       "stream": req.stream})


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
