"""The Responses API in /openapi.json (openapi.py): what pydantic cannot state about
``ResponsesRequest`` (the input item shapes, and what is refused: left out of the schema),
and the ``response`` object the routes answer, field for field (output.py, turn.py), so
schemathesis checks every answer against it."""

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
        # Any name: a call this gateway answered may have an empty one, and is sent back.
        "type": {"const": "function_call"}, "call_id": {"type": "string"},
        "name": {"type": "string"},
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
         # Not only system messages (turn.translate): a call, its output, or a message
         # with another role.
         "contains": {"anyOf": [
             {"type": "object", "required": ["type"],
              "properties": {"type": {"enum": ["function_call", "function_call_output"]}}},
             {"type": "object", "required": ["role"],
              "properties": {"role": {"enum": sorted(ROLES - {"system"})}}}]}}]}
    out: dict[str, Any] = {
        "input": user_has_text,
        "tools": {"anyOf": [_ABSENT, {"type": "array", "items": {
            "type": "object", "required": ["type", "name"], "properties": {
                "type": {"const": "function"}, "name": _NAME,
                "description": {"type": ["string", "null"]},
                "parameters": {"type": ["object", "null"]},
                "strict": {"type": ["boolean", "null"]}}}}]},
        "tool_choice": {"anyOf": [_ABSENT, {"enum": ["auto", "none", "required"]},
                                  {"type": "object", "required": ["type", "name"],
                                   "properties": {"type": {"const": "function"},
                                                  "name": {"type": "string"}}}]},
        "text": {"anyOf": [_ABSENT, {"type": "object", "properties": {"format": {"anyOf": [
            {"type": "null", "description": "null: plain text, as when absent"},
            {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object"]}}},
            {"type": "object", "required": ["type", "name", "schema"], "properties": {
                "type": {"const": "json_schema"}, "name": {"type": "string"},
                "schema": {"type": "object"}, "strict": {"type": ["boolean", "null"]},
                "description": {"type": ["string", "null"]}}}]}}}]},
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


# -- the response object (output.py, turn.py) ----------------------------------------

_STRING = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_ITEM_STATUS = {"enum": ["in_progress", "completed", "incomplete"]}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object: every property listed, all required but ``optional``."""
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [k for k in properties if k not in optional]}


OUTPUT_TEXT = _object({"type": {"const": "output_text"}, "text": _STRING,
                       "annotations": {"type": "array", "maxItems": 0},
                       "logprobs": {"type": "array", "maxItems": 0}})
MESSAGE_ITEM = _object({"type": {"const": "message"}, "id": _STRING, "status": _ITEM_STATUS,
                        "role": {"const": "assistant"},
                        "content": {"type": "array", "items": OUTPUT_TEXT}})
FUNCTION_CALL_ITEM = _object({"type": {"const": "function_call"}, "id": _STRING,
                              "call_id": _STRING, "name": _STRING, "arguments": _STRING,
                              "status": _ITEM_STATUS})
USAGE = _object({"input_tokens": _INT,
                 "input_tokens_details": _object({"cached_tokens": _INT,
                                                  "cache_write_tokens": _INT}),
                 "output_tokens": _INT,
                 "output_tokens_details": _object({"reasoning_tokens": _INT}),
                 "total_tokens": _INT})
_OR_NULL = ("instructions", "max_output_tokens", "temperature", "top_p",
            "previous_response_id", "user")


def response_object() -> dict[str, Any]:
    """The answer of ``POST /v1/responses`` (not streamed) and of ``GET /v1/responses/{id}``:
    a finished response, ``completed`` or cut at ``max_output_tokens`` (``incomplete``).
    Request fields it echoes are typed as the request's; ``tools`` and ``text`` are echoed
    as sent."""
    echoed: dict[str, Any] = {
        "instructions": _STRING, "max_output_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number"}, "top_p": {"type": "number"},
        "previous_response_id": _STRING, "user": _STRING}
    return _object({
        "id": _STRING, "object": {"const": "response"}, "created_at": _INT,
        "status": {"enum": ["completed", "incomplete"]},
        "error": {"type": "null"},
        "incomplete_details": {"anyOf": [{"type": "null"}, _object(
            {"reason": {"const": "max_output_tokens"}})]},
        "model": _STRING,
        "output": {"type": "array", "items": {"anyOf": [MESSAGE_ITEM, FUNCTION_CALL_ITEM]}},
        "usage": USAGE,
        **{k: {"anyOf": [echoed[k], {"type": "null"}]} for k in _OR_NULL},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [_STRING, {"type": "object"}]},
        "parallel_tool_calls": {"type": "boolean"}, "store": {"type": "boolean"},
        "text": {"type": "object"}, "truncation": {"const": "disabled"},
        "metadata": {"type": "object", "additionalProperties": _STRING},
    })
