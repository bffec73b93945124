"""What pydantic cannot state about ``ResponsesRequest`` in /openapi.json (openapi.py):
the input item shapes, and what is refused (left out of the schema)."""

from __future__ import annotations

from typing import Any

from .items import ROLES, TEXT_PARTS
from .request import HARMLESS_INCLUDES

_TEXT_PART = {"type": "object", "required": ["type", "text"], "properties": {
    "type": {"enum": sorted(TEXT_PARTS)}, "text": {"type": "string"}}}
_TEXT_OR_PARTS = {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]}
_NAME = {"type": "string", "minLength": 1}
INPUT_ITEM = {"anyOf": [
    {"type": "object", "required": ["role", "content"], "properties": {
        "type": {"const": "message"}, "role": {"enum": sorted(ROLES)},
        "content": _TEXT_OR_PARTS}},
    {"type": "object", "required": ["type", "call_id", "name", "arguments"], "properties": {
        "type": {"const": "function_call"}, "call_id": {"type": "string"}, "name": _NAME,
        "arguments": {"type": "string"}}},
    {"type": "object", "required": ["type", "call_id", "output"], "properties": {
        "type": {"const": "function_call_output"}, "call_id": {"type": "string"},
        "output": _TEXT_OR_PARTS}},
]}
_ABSENT = {"type": "null"}


def schema_overrides() -> dict[str, Any]:
    """Properties of ``ResponsesRequest``'s schema that pydantic cannot state: the item
    shapes, and what is refused (left out, so a client that follows the schema is never
    refused — forced tool calls are refused on the embedded tier)."""
    user_has_text = {"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": INPUT_ITEM,
         "contains": {"type": "object", "required": ["role"],
                      "properties": {"role": {"enum": ["user", "assistant", "developer"]}}}}]}
    out: dict[str, Any] = {
        "input": user_has_text,
        "tools": {"anyOf": [_ABSENT, {"type": "array", "items": {
            "type": "object", "required": ["type", "name"], "properties": {
                "type": {"const": "function"}, "name": _NAME,
                "description": {"type": "string"}, "parameters": {"type": "object"},
                "strict": {"type": ["boolean", "null"]}}}}]},
        "tool_choice": {"anyOf": [_ABSENT, {"enum": ["auto", "none", "required"]},
                                  {"type": "object", "required": ["type", "name"],
                                   "properties": {"type": {"const": "function"},
                                                  "name": {"type": "string"}}}],
                        "description": "'required' or a named function: 400 on the "
                                       "embedded tier"},
        "text": {"anyOf": [_ABSENT, {"type": "object", "properties": {"format": {"anyOf": [
            {"type": "null", "description": "null: plain text, as when absent"},
            {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object"]}}},
            {"type": "object", "required": ["type", "name", "schema"], "properties": {
                "type": {"const": "json_schema"}, "name": {"type": "string"},
                "schema": {"type": "object"}, "strict": {"type": ["boolean", "null"]}}}]}}}]},
        # An id this gateway returned earlier (kept in memory; otherwise a 400
        # previous_response_not_found): no schema can name the ids it happens to keep.
        "previous_response_id": {**_ABSENT, "description": "the id of a response this "
                                 "gateway returned and still keeps (400 "
                                 "previous_response_not_found otherwise)"},
        "background": {"anyOf": [_ABSENT, {"const": False}]},
        "include": {"anyOf": [_ABSENT, {"type": "array",
                                        "items": {"enum": sorted(HARMLESS_INCLUDES)}}]},
        "reasoning": {"anyOf": [_ABSENT, {"type": "object", "properties": {
            "effort": {"enum": [None, "none"]}, "summary": {"enum": [None, "none"]}}}]},
        "truncation": {"anyOf": [_ABSENT, {"const": "disabled"}]},
    }
    for name in ("top_logprobs", "max_tool_calls", "conversation", "prompt"):
        out[name] = _ABSENT
    return out
