"""Responses ``input`` items → chat messages: ``message`` items (text parts only),
``function_call`` and ``function_call_output``; anything else is a 400 naming it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidRequest

ROLES = {"user", "system", "developer", "assistant"}
TEXT_PARTS = {"input_text", "output_text", "text"}

Message = dict[str, Any]


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of parts", param=where)
    pieces: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in TEXT_PARTS:
            raise InvalidRequest(
                f"{where}[{i}]: content part type {kind!r} is not supported: the models "
                "served read text (input_text) only", param=f"{where}[{i}].type")
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}[{i}].text must be a string", param=f"{where}[{i}].text")
        pieces.append(text)
    return "".join(pieces)


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key} must be a string", param=f"{where}.{key}")
    return value


def _message(item: dict[str, Any], where: str, messages: list[Message]) -> None:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(f"{where}.role must be one of {sorted(ROLES)}",
                             param=f"{where}.role")
    messages.append({"role": role, "content": _text(item.get("content"), f"{where}.content")})


def _function_call(item: dict[str, Any], where: str, messages: list[Message]) -> None:
    call = {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": _string(item, "name", where),
                         "arguments": _string(item, "arguments", where)}}
    last = messages[-1] if messages else None
    if last and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
        last["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})


def _call_output(item: dict[str, Any], where: str, messages: list[Message]) -> None:
    messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", where),
                     "content": _text(item.get("output"), f"{where}.output")})


# item type → how it joins the conversation.
READERS: dict[str, Callable[[dict[str, Any], str, list[Message]], None]] = {
    "message": _message, "function_call": _function_call, "function_call_output": _call_output,
}


def item_messages(items: str | list[dict[str, Any]]) -> list[Message]:
    """Responses input → chat messages. Consecutive ``function_call`` items become one
    assistant message with several tool calls, as chat templates expect."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[Message] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        read = READERS.get(kind) if isinstance(kind, str) else None
        if read is None:
            raise InvalidRequest(f"{where}: input item type {kind!r} is not supported "
                                 "(send message, function_call and function_call_output "
                                 "items)", param=f"{where}.type")
        read(item, where, messages)
    return messages
