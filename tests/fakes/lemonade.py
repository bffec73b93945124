"""A protocol fake of AMD Lemonade Server, written from its public spec
(lemonade-sdk/lemonade docs/server/server_spec.md): the OpenAI API under ``/api/v1``
(``/api/v1/models``, ``/api/v1/chat/completions``, ``/api/v1/embeddings``),
``GET /api/v1/health`` -> ``{"status": "ok", "version", "model_loaded",
"all_models_loaded": [{"model_name", ...}], "max_models"}``, and Ollama's API
(``/api/version``, ``/api/tags``). Port 13305 since v10.1 (8000 before). Not installed
here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class LemonadeFake(FakeServer):
    models: list[FakeModel] = field(default_factory=lambda: [
        FakeModel("Qwen3-0.6B-GGUF"), FakeModel("Llama-3.2-1B-Instruct-Hybrid", loaded=False)])
    reply_prefix: str = "lemonade-fake: "
    owned_by: str = "lemonade"
    version: str = "10.1.0"

    def openai_routes(self) -> list[Route]:
        return [
            self.route("/api/v1/models", self.v1_models),
            self.route("/api/v1/chat/completions", self.v1_chat, "POST", inference=True),
            self.route("/api/v1/embeddings", self.v1_embeddings, "POST", inference=True),
        ]

    def native_routes(self) -> list[Route]:
        return [self.route("/api/v1/health", self.health),
                self.route("/api/version", self.ollama_version),
                self.route("/api/tags", self.ollama_tags)]

    async def health(self, request: Request, body: Any) -> Response:
        loaded = [m for m in self.models if m.loaded]
        return JSONResponse({
            "status": "ok", "version": self.version,
            "model_loaded": loaded[0].id if loaded else None,
            "all_models_loaded": [{"model_name": m.id, "type": "llm", "device": "cpu",
                                   "recipe": "llamacpp"} for m in loaded],
            "max_models": {"llm": 1, "embedding": 1, "reranking": 1}})

    async def ollama_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"version": "0.6.0"})

    async def ollama_tags(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [{"name": m.id, "model": m.id} for m in self.models]})
