"""What a server kind needs changed in an OpenAI chat body to honour it, as data: one
row per kind, each a list of rewrites that keep the request's meaning."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

Body = dict[str, Any]


def named_tool_choice_as_required(body: Body) -> Body:
    """``tool_choice: {"type": "function", "function": {"name": X}}`` as ``"required"``
    over the one tool X: the same forced call, for servers that take only the string
    forms (llama-server logs "Wrong type supplied for parameter 'tool_choice'" and answers
    as if no choice had been made)."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return body
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    tools = body.get("tools")
    if not isinstance(name, str) or not isinstance(tools, list):
        return body
    chosen = [t for t in tools if isinstance(t, dict)
              and isinstance(t.get("function"), dict) and t["function"].get("name") == name]
    if not chosen:
        return body  # naming a tool it was not given: the server's own error stands
    return {**body, "tools": chosen, "tool_choice": "required"}


def json_schema_as_compact_grammar(body: Body) -> Body:
    """``response_format`` JSON (schema or mode) as an LLGuidance grammar with compact
    whitespace. llama.cpp's own schema grammar lets a small model spend its whole budget
    on tabs and newlines between keys (SmolLM2 did, answering ``finish_reason: length``
    with half an object); compact JSON leaves it no such way out, and LLGuidance
    enforces the schema token by token. Only for builds with LLGuidance (xllamacpp's)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or "grammar" in body or "json_schema" in body:
        return body
    schema: object = None
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        schema = fmt["json_schema"].get("schema", {})
    elif fmt.get("type") == "json_object":
        schema = fmt.get("schema", {"type": "object"})
    if not isinstance(schema, dict):
        return body
    compact = {**schema, "x-guidance": {"whitespace_flexible": False}}
    rest = {k: v for k, v in body.items() if k != "response_format"}
    return {**rest, "grammar": "%llguidance {}\nstart: %json " + json.dumps(compact)}


REWRITES: Final[dict[str, tuple[Callable[[Body], Body], ...]]] = {
    "llama.cpp": (named_tool_choice_as_required,),
    # The embedded engine: llama.cpp's server as the xllamacpp wheel builds it.
    "xllamacpp": (named_tool_choice_as_required, json_schema_as_compact_grammar),
}


# Servers that count a stream's usage only when asked (``stream_options.include_usage``,
# answered in a last chunk with no choices): the backend asks, and folds that usage into
# the finishing chunk when the caller did not ask, so every stream ends with its counts.
USAGE_ONLY_WHEN_ASKED: Final = frozenset({"llama.cpp", "xllamacpp"})


def adapt(kind: str, body: Body) -> Body:
    for rewrite in REWRITES.get(kind, ()):
        body = rewrite(body)
    return body
