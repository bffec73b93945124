"""A protocol fake of Docker Model Runner, written from Docker's public docs
(docs.docker.com/ai/model-runner: API reference, `docker model` CLI reference): port
12434 on Docker Engine; ``GET /`` answers "Docker Model Runner is running"; the OpenAI
API lives under ``/engines/v1`` and ``/engines/llama.cpp/v1``; Ollama's API is answered
at the root (``/api/tags``, ``/api/version``, ``/api/chat``); CORS is open by default
(``docker desktop enable model-runner --cors all``). Docker is not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer

ENGINE_PREFIXES = ("/engines/v1", "/engines/llama.cpp/v1")


@dataclass
class DockerModelRunnerFake(FakeServer):
    models: list[FakeModel] = field(default_factory=lambda: [
        FakeModel("ai/smollm2:latest"), FakeModel("ai/mxbai-embed-large:latest",
                                                  kind="embeddings")])
    reply_prefix: str = "dmr-fake: "
    owned_by: str = "docker"
    cors: str = "*"  # "all" is the default; "" plays --cors none

    def response_headers(self) -> dict[str, str]:
        return {"access-control-allow-origin": self.cors} if self.cors else {}

    def openai_routes(self) -> list[Route]:
        # The OpenAI surface under each engine prefix, none at /v1.
        return [self.route(prefix + path, handler, method, inference=inference)
                for prefix in ENGINE_PREFIXES
                for path, handler, method, inference in (
                    ("/models", self.v1_models, "GET", False),
                    ("/chat/completions", self.v1_chat, "POST", True),
                    ("/embeddings", self.v1_embeddings, "POST", True))]

    def native_routes(self) -> list[Route]:
        return [self.route("/", self.root),
                self.route("/api/version", self.ollama_version),
                self.route("/api/tags", self.ollama_tags)]

    async def root(self, request: Request, body: Any) -> Response:
        return PlainTextResponse("Docker Model Runner is running")

    async def ollama_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"version": "0.6.0"})

    async def ollama_tags(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [{"name": m.id, "model": m.id} for m in self.models]})
