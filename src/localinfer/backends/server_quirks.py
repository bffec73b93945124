"""What a server kind needs changed in an OpenAI chat body to honour it, as data: one
row per kind, each a list of rewrites that keep the request's meaning."""

from __future__ import annotations

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


REWRITES: Final[dict[str, tuple[Callable[[Body], Body], ...]]] = {
    "llama.cpp": (named_tool_choice_as_required,),
}


def adapt(kind: str, body: Body) -> Body:
    for rewrite in REWRITES.get(kind, ()):
        body = rewrite(body)
    return body
