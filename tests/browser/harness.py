"""What the browser-tier tests share: a loopback-only headless Chromium (Debian's, driven
by Playwright), servers that record every request and the bytes they answered with, a
fake remote endpoint that counts requests, and the exported static site."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHROMIUM = Path("/usr/bin/chromium")
# The type of the ``new_page`` fixture (tests/browser/conftest.py): ``new_page() -> page``.
NewPage = Callable[[], Any]
# Generous: two cores are shared with other work; waits are for events, not sleeps.
TIMEOUT_MS = 180_000

# Headless, no sandbox (root in CI), nothing but loopback: background services off, and
# every other host name fails to resolve inside the browser itself.
BROWSER_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--disable-features=MediaRouter,OptimizationHints",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


@dataclass(frozen=True)
class Served:
    method: str
    path: str
    status: int
    body_bytes: int


@dataclass
class Recorder:
    """Every request an app answered, with the body bytes it sent."""

    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            state: dict[str, Any] = {"status": 0, "bytes": 0}

            async def noting(message: Message) -> None:
                if message["type"] == "http.response.start":
                    state["status"] = message["status"]
                elif message["type"] == "http.response.body":
                    state["bytes"] += len(message.get("body", b""))
                await send(message)

            try:
                await app(scope, receive, noting)
            finally:
                with self.lock:
                    self.served.append(Served(scope["method"], scope["path"], state["status"],
                                              state["bytes"]))
        return recorded

    def bytes_under(self, prefix: str) -> int:
        with self.lock:
            return sum(s.body_bytes for s in self.served if s.path.startswith(prefix))

    def paths(self) -> list[str]:
        with self.lock:
            return [s.path for s in self.served]

    def mark(self) -> int:
        with self.lock:
            return len(self.served)

    def since(self, mark: int) -> list[Served]:
        with self.lock:
            return list(self.served[mark:])


def static_site(directory: Path) -> Starlette:
    """A plain static host for an exported folder (no COOP/COEP, no CSP: like any host)."""
    app = Starlette()
    app.mount("/", StaticFiles(directory=directory, html=True))
    return app


class FakeRemote:
    """An OpenAI-compatible endpoint on loopback (a remote provider, or a local server that
    allows the page's origin, as Ollama does with OLLAMA_ORIGINS) that streams scripted
    chunks and counts every request it receives (preflights included)."""

    def __init__(self, allow_origin: str, chunks: list[str]) -> None:
        self.allow_origin = allow_origin
        self.chunks = chunks
        self.requests: list[tuple[str, str]] = []

    def cors(self) -> dict[str, str]:
        return {"access-control-allow-origin": self.allow_origin,
                "access-control-allow-headers": "content-type, authorization",
                "access-control-allow-methods": "POST, OPTIONS"}

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            self.requests.append((request.method, request.url.path))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=self.cors())
            body = orjson.loads(await request.body())

            async def events() -> AsyncIterator[bytes]:
                for text in self.chunks:
                    chunk = {"id": "remote-1", "object": "chat.completion.chunk", "created": 0,
                             "model": body.get("model", "remote-model"),
                             "choices": [{"index": 0, "delta": {"content": text},
                                          "finish_reason": None}]}
                    yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                yield b"data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers=self.cors())
        async def models(request: Request) -> Response:
            self.requests.append((request.method, request.url.path))
            return Response(orjson.dumps({"object": "list", "data": [
                {"id": "remote-model", "object": "model", "owned_by": "fake"}]}),
                media_type="application/json", headers=self.cors())

        return Starlette(routes=[Route("/v1/chat/completions", chat,
                                       methods=["POST", "OPTIONS"]),
                                 Route("/v1/models", models, methods=["GET"])])


def throttled(app: ASGIApp, prefix: str, pause: float) -> ASGIApp:
    """``app``, pausing ``pause`` seconds before each body chunk under ``prefix`` (a slow
    network for one kind of file)."""
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(prefix):
            await app(scope, receive, send)
            return

        async def pacing(message: Message) -> None:
            if message["type"] == "http.response.body":
                await asyncio.sleep(pause)
            await send(message)
        await app(scope, receive, pacing)
    return slow
