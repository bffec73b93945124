"""Tool execution for HTTP clients of the gateway, only on request.

``POST /v1/chat/completions`` with ``x-localinfer-tools: run_python`` runs the tool loop
(:func:`~localinfer.tools.arun_with_tools`) on the gateway: the model's ``run_python``
calls execute in the sandbox and the reply is the model's final answer, with every call
and result in ``localinfer_tool_calls``. Without the header nothing changes: tool calls
go back to the client unexecuted, as OpenAI's API does.

An ASGI middleware placed *inside* the gateway's security middleware, so Host, Origin and
token rules apply first. Non-streaming only; a body that brings its own ``tools`` is
refused (the two would be ambiguous).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import LocalInferError, UsageError
from ..settings import Settings
from ..types import ChatRequest
from .tool import Tool, run_python

if TYPE_CHECKING:
    from ..client import AsyncClient

TOOLS_HEADER = "x-localinfer-tools"
ROUNDS_HEADER = "x-localinfer-tool-rounds"
SENSITIVE_HEADER = "x-localinfer-sensitive"
BUILTIN: dict[str, Tool] = {"run_python": run_python}
CHAT_PATH = "/v1/chat/completions"
MAX_ROUNDS = 4


class ToolsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, client: AsyncClient) -> None:
        self.app = app
        self.settings = settings
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or scope.get("path") != CHAT_PATH
                or not any(k == TOOLS_HEADER.encode() for k, _ in scope.get("headers", []))):
            await self.app(scope, receive, send)
            return
        from ..gateway.errors import openai_error
        from ..gateway.wire import JSONBody

        request = Request(scope, receive)
        try:
            response: Any = await self._answer(request)
        except LocalInferError as exc:
            response = JSONBody(openai_error(exc), status_code=exc.http_status)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Any:
        from ..gateway.wire import JSONBody, check_model_name, read_model, served_headers
        from .loop import arun_with_tools

        names = [n.strip() for n in request.headers.get(TOOLS_HEADER, "").split(",")
                 if n.strip()]
        unknown = [n for n in names if n not in BUILTIN]
        if not names or unknown:
            raise UsageError(f"{TOOLS_HEADER}: unknown tool(s) {', '.join(unknown) or '(none)'}; "
                             f"available: {', '.join(BUILTIN)}")
        chat = await read_model(request, ChatRequest, self.settings.max_body_bytes)
        check_model_name(chat.model)
        if chat.stream:
            raise UsageError(f"{TOOLS_HEADER} needs \"stream\": false")
        if chat.tools:
            raise UsageError(f"{TOOLS_HEADER} cannot be combined with tools in the body")
        options = chat.model_dump(exclude_none=True,
                                  exclude={"messages", "tools", "tool_choice", "stream"})
        sensitive = request.headers.get(SENSITIVE_HEADER, "").strip().lower() in {
            "1", "true", "yes"}
        result = await arun_with_tools(self.client, messages=chat.messages,
                                       tools=[BUILTIN[n] for n in names],
                                       max_rounds=MAX_ROUNDS, sensitive=sensitive, **options)
        reply = result.reply
        for choice in reply.choices:
            choice.finish_reason = choice.finish_reason or "stop"
        body = reply.model_dump(mode="json", exclude_none=True)
        body["localinfer_tool_calls"] = [asdict(c) for c in result.calls]
        headers = {**served_headers(reply.backend, reply.tier), ROUNDS_HEADER: str(result.rounds)}
        return JSONBody(body, headers=headers)


def tools_middleware(settings: Settings, client: AsyncClient) -> list[Middleware]:
    """The middleware for the gateway's stack (after the security middleware)."""
    return [Middleware(ToolsMiddleware, settings=settings, client=client)]
