"""The chat route's tool-loop branch: ``POST /v1/chat/completions`` with
``x-localinfer-tools: run_python`` runs the tool loop (:func:`~localinfer.tools.arun_with_tools`)
on the gateway: the model's ``run_python`` calls execute in the sandbox and the reply is
the model's final answer, with every call and result in ``localinfer_tool_calls``.
Without the header nothing changes: tool calls go back to the client unexecuted, as
OpenAI's API does.

The body is the chat route's, parsed and checked as every chat request is; then the
branch asks for no stream and no ``tools`` of the client's own (the two would be
ambiguous).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from ..errors import UsageError
from ..tools.loop import DEFAULT_MAX_ROUNDS, arun_with_tools
from ..tools.tool import BUILTIN, Tool
from ..types import ChatRequest
from .context import Gateway
from .honest import finished
from .wire import JSONBody, served_headers

TOOLS_HEADER: Final = "x-localinfer-tools"
ROUNDS_HEADER: Final = "x-localinfer-tool-rounds"


def requested_tools(request: Request) -> list[Tool] | None:
    """The built-in tools ``x-localinfer-tools`` asks the gateway to run; None without it."""
    value = request.headers.get(TOOLS_HEADER)
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILTIN]
    if not names or unknown:
        raise UsageError(f"{TOOLS_HEADER}: unknown tool(s) {', '.join(unknown) or '(none)'}; "
                         f"available: {', '.join(BUILTIN)}")
    return [BUILTIN[n] for n in names]


async def run_tools(gw: Gateway, request: Request, chat: ChatRequest, tools: list[Tool],
                    sensitive: bool) -> Response:
    if chat.stream:
        raise UsageError(f"{TOOLS_HEADER} needs \"stream\": false")
    if chat.tools:
        raise UsageError(f"{TOOLS_HEADER} cannot be combined with tools in the body")
    checked = gw.client.router.check(chat)  # the field table, before the first round
    options = checked.model_dump(exclude_none=True,
                                 exclude={"messages", "tools", "tool_choice", "stream"})
    result = await gw.until_disconnect(request, lambda: arun_with_tools(
        gw.client, messages=chat.messages, tools=tools, max_rounds=DEFAULT_MAX_ROUNDS,
        sensitive=sensitive, **options))
    if result is None:
        return Response(status_code=499)
    reply = finished(result.reply)
    body = reply.model_dump(mode="json", exclude_none=True)
    body["localinfer_tool_calls"] = [asdict(c) for c in result.calls]
    headers = {**served_headers(reply.backend, reply.tier), ROUNDS_HEADER: str(result.rounds)}
    return JSONBody(body, headers=headers)
