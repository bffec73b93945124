"""A protocol fake of LocalAI, written from LocalAI's public sources and docs
(core/http/routes/health.go: ``/readyz`` and ``/healthz`` answer 200;
core/http/routes/localai.go: ``GET /version`` -> ``{"version"}``; routes/ollama.go: it
also serves Ollama's ``/api/tags`` and ``/api/version``). LocalAI is not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


def default_models() -> list[FakeModel]:
    return [FakeModel("phi-2"), FakeModel("text-embedding-ada-002", kind="embeddings")]


@dataclass
class LocalAIFake(FakeServer):
    models: list[FakeModel] = field(default_factory=default_models)
    reply_prefix: str = "localai-fake: "
    version: str = "v2.24.2"

    def model_entry(self, model: FakeModel) -> dict[str, Any]:
        # LocalAI's list entries carry only id and object.
        return {"id": model.id, "object": "model"}

    def native_routes(self) -> list[Route]:
        return [
            self.route("/readyz", self.ok), self.route("/healthz", self.ok),
            self.route("/version", self.get_version),
            self.route("/api/version", self.get_version),
            self.route("/api/tags", self.ollama_tags),
        ]

    async def ok(self, request: Request, body: Any) -> Response:
        return PlainTextResponse("OK")

    async def get_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"version": self.version})

    async def ollama_tags(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [{"name": m.id, "model": m.id} for m in self.models]})
