"""What every protocol fake shares: an OpenAI-compatible surface (``/v1/models``,
``/v1/chat/completions`` streamed and not, ``/v1/embeddings``), a request log, and
knobs that make it fail, so router and gateway tests can use any fake as a backend.

A fake answers a chat with ``"<prefix><last user message>"``, so a test can check
which server a request reached and that the prompt arrived intact.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FailMode = Literal["none", "error", "hang", "drop"]
Handler = Callable[[Request, Any], Awaitable[Response]]
EMBEDDING_DIM = 8
HANG_SECONDS = 3600.0


@dataclass
class FakeModel:
    id: str
    kind: Literal["chat", "embeddings"] = "chat"
    loaded: bool = True
    family: str = "llama"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    body: Any


class AddHeaders:
    """ASGI middleware: set fixed headers on every response."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self.headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k not in names]
                message = {**message, "headers": kept + self.headers}
            await send(message)
        await self.app(scope, receive, send_with_headers)


class DroppedConnection(Response):
    """Starts a response, then fails: the server closes the connection mid-answer."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        raise ConnectionAbortedError("fake server dropped the connection")


def last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def fake_vector(text: str) -> list[float]:
    """A deterministic unit vector: equal texts embed equally, different ones differ."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b - 127.5 for b in digest[:EMBEDDING_DIM]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def word_pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


@dataclass
class FakeServer:
    """Base of the fakes. Subclasses add their native routes in ``native_routes``."""

    models: list[FakeModel] = field(default_factory=list)
    reply_prefix: str = "fake: "
    owned_by: str = "fake"
    # Knobs. fail applies to inference routes, or to every route with fail_scope="all".
    fail: FailMode = "none"
    fail_scope: Literal["inference", "all"] = "inference"
    fail_after_chunks: int | None = None
    # A key every route asks for (``Authorization: Bearer KEY``), except ``open_paths``.
    api_key: str | None = None
    open_paths: frozenset[str] = frozenset()
    requests: list[Recorded] = field(default_factory=list)
    _app: Starlette | None = field(default=None, init=False, repr=False)

    # --- app ------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        if self._app is None:
            routes = [*self.native_routes(), *self.openai_routes()]
            headers = self.response_headers()
            middleware = [Middleware(AddHeaders, headers=headers)] if headers else []
            self._app = Starlette(routes=routes, middleware=middleware)
        return self._app

    def native_routes(self) -> list[Route]:
        return []

    def response_headers(self) -> dict[str, str]:
        """Headers the real server puts on every response (e.g. ``Server``)."""
        return {}

    def openai_routes(self) -> list[Route]:
        return [
            self.route("/v1/models", self.v1_models),
            self.route("/v1/chat/completions", self.v1_chat, "POST", inference=True),
            self.route("/v1/embeddings", self.v1_embeddings, "POST", inference=True),
        ]

    def route(self, path: str, handler: Handler, method: str = "GET", *,
              inference: bool = False) -> Route:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            self.requests.append(Recorded(request.method, request.url.path, body))
            if (self.api_key and request.url.path not in self.open_paths
                    and request.headers.get("authorization") != f"Bearer {self.api_key}"):
                return self.unauthorized(request)
            if self.fail != "none" and (inference or self.fail_scope == "all"):
                return await self.failure()
            return await handler(request, body)
        return Route(path, endpoint, methods=[method])

    def unauthorized(self, request: Request) -> Response:
        return JSONResponse({"error": {"message": "invalid or missing API key",
                                       "type": "invalid_request_error"}}, status_code=401)

    async def failure(self) -> Response:
        if self.fail == "hang":
            await asyncio.sleep(HANG_SECONDS)
        if self.fail == "drop":
            return DroppedConnection()
        return JSONResponse({"error": {"message": "fake failure", "type": "server_error"}},
                            status_code=500)

    # --- models ---------------------------------------------------------------------

    def find(self, name: Any) -> FakeModel | None:
        return next((m for m in self.models if m.id == name), None)

    def model_not_found(self, name: Any) -> Response:
        return JSONResponse({"error": {"message": f"model '{name}' not found",
                                       "type": "invalid_request_error",
                                       "code": "model_not_found"}}, status_code=404)

    def model_entry(self, model: FakeModel) -> dict[str, Any]:
        return {"id": model.id, "object": "model", "created": 1700000000,
                "owned_by": self.owned_by}

    def listed(self) -> list[FakeModel]:
        """The models /v1/models shows (servers that list only loaded ones override)."""
        return self.models

    async def v1_models(self, request: Request, body: Any) -> Response:
        return JSONResponse({"object": "list",
                             "data": [self.model_entry(m) for m in self.listed()]})

    # --- chat -----------------------------------------------------------------------

    def reply(self, messages: Any) -> str:
        return self.reply_prefix + last_user_text(messages)

    async def pieces(self, text: str) -> AsyncIterator[str]:
        for index, piece in enumerate(word_pieces(text)):
            if self.fail_after_chunks is not None and index >= self.fail_after_chunks:
                raise ConnectionAbortedError("fake server failed mid-stream")
            yield piece
            await asyncio.sleep(0)

    async def v1_chat(self, request: Request, body: Any) -> Response:
        body = body if isinstance(body, dict) else {}
        model = self.find(body.get("model"))
        if model is None:
            return self.model_not_found(body.get("model"))
        model.loaded = True
        text = self.reply(body.get("messages"))
        prompt_tokens = sum(len(str(m.get("content", "")).split())
                            for m in body.get("messages") or [] if isinstance(m, dict))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                 "total_tokens": prompt_tokens + len(text.split())}
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model.id,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model.id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            async for piece in self.pieces(text):
                yield chunk({"content": piece})
            yield chunk({}, "stop")
            if include_usage:
                tail = {"id": cid, "object": "chat.completion.chunk", "created": created,
                        "model": model.id, "choices": [], "usage": usage}
                yield f"data: {json.dumps(tail)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # --- embeddings -----------------------------------------------------------------

    async def v1_embeddings(self, request: Request, body: Any) -> Response:
        body = body if isinstance(body, dict) else {}
        model = self.find(body.get("model"))
        if model is None:
            return self.model_not_found(body.get("model"))
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse({
            "object": "list", "model": model.id,
            "data": [{"object": "embedding", "index": i, "embedding": fake_vector(str(t))}
                     for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
