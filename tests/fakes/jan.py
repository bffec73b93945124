"""A protocol fake of Jan's local API server, written from Jan's public sources
(src-tauri/src/core/server/proxy.rs: ``GET /v1/models`` lists running sessions with
``owned_by: "user"``; ``GET /openapi.json`` serves static/openapi.json whose
``info.title`` is "Jan API Server Endpoints"). With an API key set (required by current
Jan), every other path answers 401 "Missing authorization header" without one, while
``/``, ``/openapi.json`` and ``/favicon.ico`` stay open (proxy.rs ``whitelisted_paths``).
Jan is a desktop app, not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class JanFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("janhq/Jan-v1-4B-GGUF"),
                                 FakeModel("qwen3-0.6b", loaded=False)])
    reply_prefix: str = "jan-fake: "
    owned_by: str = "user"
    open_paths: frozenset[str] = frozenset({"/", "/openapi.json", "/favicon.ico"})

    def unauthorized(self, request: Request) -> Response:
        text = ("Invalid or missing authorization token" if "authorization" in request.headers
                else "Missing authorization header")
        return PlainTextResponse(text, status_code=401)

    def listed(self) -> list[FakeModel]:
        # Jan lists the sessions it is running, i.e. loaded models only.
        return [m for m in self.models if m.loaded]

    def native_routes(self) -> list[Route]:
        return [self.route("/openapi.json", self.openapi)]

    async def openapi(self, request: Request, body: Any) -> Response:
        return JSONResponse({
            "openapi": "3.0.0",
            "info": {"title": "Jan API Server Endpoints",
                     "description": "Jan API server provides a REST API interface.",
                     "version": "1.0"},
            "servers": [{"url": "http://localhost:1337/v1"}],
            "paths": {"/models": {"get": {"summary": "List loaded models"}}}})
