"""The answer's output items (``message`` with ``output_text`` parts, ``function_call``)
and ``usage``, in the Responses API's shapes."""

from __future__ import annotations

from typing import Any

from ...types import ChatResponse, Usage, new_id


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [text_part(text)] if status == "completed" else []}


def call_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"type": "function_call", "id": new_id("fc"),
            "call_id": call.get("id") or new_id("call"), "name": fn.get("name") or "",
            "arguments": fn.get("arguments") or "", "status": status}


def usage_of(usage: Usage | None, fallback_output: int) -> dict[str, Any]:
    prompt = usage.prompt_tokens if usage else 0
    output = usage.completion_tokens if usage else fallback_output
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output}


def reply_output(reply: ChatResponse) -> list[dict[str, Any]]:
    message = reply.choices[0].message if reply.choices else None
    output: list[dict[str, Any]] = []
    if reply.text or not (message and message.tool_calls):
        output.append(message_item(new_id("msg"), reply.text))
    for call in (message.tool_calls or []) if message else []:
        output.append(call_item(call.model_dump(exclude_none=True)))
    return output


def output_messages(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer's items as chat messages, for the next turn of the conversation."""
    text = "".join(p["text"] for item in output if item["type"] == "message"
                   for p in item["content"])
    calls = [{"id": it["call_id"], "type": "function",
              "function": {"name": it["name"], "arguments": it["arguments"]}}
             for it in output if it["type"] == "function_call"]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    return [message]
