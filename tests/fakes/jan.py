"""A protocol fake of Jan's local API server, written from Jan's public sources
(src-tauri/src/core/server/proxy.rs: ``GET /v1/models`` lists running sessions with
``owned_by: "user"``; ``GET /openapi.json`` serves static/openapi.json whose
``info.title`` is "Jan API Server Endpoints"). Jan is a desktop app, not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class JanFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("janhq/Jan-v1-4B-GGUF"),
                                 FakeModel("qwen3-0.6b", loaded=False)])
    reply_prefix: str = "jan-fake: "
    owned_by: str = "user"

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
