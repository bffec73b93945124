"""An OpenAI-shaped ChatRequest -> keyword arguments for llama-cpp-python's
``Llama.create_chat_completion``. What passes, what is renamed and what is dropped is
data here, not branches in the backend."""

from __future__ import annotations

from typing import Any, Final

from ...types import ChatMessage, ChatRequest

# Same name and meaning in both APIs.
PASSED: Final = ("temperature", "top_p", "max_tokens", "stop", "seed", "tools", "tool_choice")
# Sampling options llama-cpp-python understands that OpenAI's schema (as we model it)
# does not; taken from the request's extra fields when a caller sends them.
EXTRAS: Final = ("presence_penalty", "frequency_penalty", "logit_bias", "top_k", "min_p",
                 "typical_p", "repeat_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta")
# Roles the chat templates know; OpenAI's newer "developer" role is a system message.
ROLE_ALIASES: Final = {"developer": "system"}


def llama_chat_params(request: ChatRequest) -> dict[str, Any]:
    params: dict[str, Any] = {"messages": [_message(m) for m in request.messages]}
    for name in PASSED:
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    extra = request.model_extra or {}
    params.update({name: extra[name] for name in EXTRAS if extra.get(name) is not None})
    response_format = _response_format(request.response_format)
    if response_format is not None:
        params["response_format"] = response_format
    return params


def _message(message: ChatMessage) -> dict[str, Any]:
    out = message.model_dump(exclude_none=True)
    out["role"] = ROLE_ALIASES.get(message.role, message.role)
    if isinstance(message.content, list):
        # Templates concatenate strings; keep the text parts (a text model reads no images).
        out["content"] = "".join(str(part.get("text", "")) for part in message.content
                                 if part.get("type") == "text")
    elif message.content is None:
        out["content"] = ""
    return out


def _response_format(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """llama-cpp-python constrains output with a grammar for ``json_object`` (optionally
    with a ``schema``). OpenAI's ``json_schema`` maps onto that; ``text`` and unknown
    types mean no constraint."""
    if not fmt:
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return {k: v for k, v in fmt.items() if k in ("type", "schema")}
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"schema": schema} if schema else {})}
    return None
