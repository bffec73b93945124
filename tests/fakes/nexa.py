"""A protocol fake of the Nexa SDK server (``nexa serve``), written from its public
docs and sources (docs.nexa.ai NexaAPI: 127.0.0.1:18181 by default, OpenAI
``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/reranking``; NexaAI/nexa-sdk
runner/server/route.go: ``GET /`` -> "Nexa SDK is running"). Its model listing's shape
is not documented; the fake lists models as an OpenAI ``/v1/models`` list. Not
installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class NexaFake(FakeServer):
    models: list[FakeModel] = field(default_factory=lambda: [
        FakeModel("NexaAI/Qwen3-0.6B-GGUF")])
    reply_prefix: str = "nexa-fake: "
    owned_by: str = "nexa"

    def native_routes(self) -> list[Route]:
        return [self.route("/", self.root),
                self.route("/v1/reranking", self.reranking, "POST", inference=True)]

    async def root(self, request: Request, body: Any) -> Response:
        return PlainTextResponse("Nexa SDK is running")

    async def reranking(self, request: Request, body: Any) -> Response:
        docs = body.get("documents") if isinstance(body, dict) else None
        return JSONResponse({"result": [1.0 / (i + 1) for i, _ in enumerate(docs or [])]})
