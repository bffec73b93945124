"""A protocol fake of Ollama, written from Ollama's public API documentation
(docs.ollama.com/api: ``/api/tags``, ``/api/ps``, ``/api/version``, ``/api/chat``,
``/api/embed``, ``/api/show``, and the OpenAI compatibility page for ``/v1``).

Ollama itself cannot be installed here. The fake accepts a model's name without
``:latest`` as Ollama does, marks a model loaded once it served a request (as
``/api/ps`` would show), and streams ``/api/chat`` as NDJSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .base import FakeModel, FakeServer, fake_vector

CREATED_AT = "2024-11-01T10:00:00.000000000Z"


def default_models() -> list[FakeModel]:
    return [
        FakeModel("smollm2:135m", loaded=True, family="llama"),
        FakeModel("llama3.2:latest", loaded=False, family="llama"),
        FakeModel("nomic-embed-text:latest", kind="embeddings", loaded=False,
                  family="nomic-bert"),
    ]


@dataclass
class OllamaFake(FakeServer):
    models: list[FakeModel] = field(default_factory=default_models)
    reply_prefix: str = "ollama-fake: "
    owned_by: str = "library"
    version: str = "0.5.7"

    def find(self, name: Any) -> FakeModel | None:
        if not isinstance(name, str):
            return None
        return super().find(name) or super().find(name + ":latest")

    def model_not_found(self, name: Any) -> Response:
        return JSONResponse({"error": {"message": f'model "{name}" not found, try pulling it '
                                                  "first", "type": "api_error",
                                       "param": None, "code": None}}, status_code=404)

    def details(self, model: FakeModel) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": model.family,
                "families": [model.family], "parameter_size": "135M",
                "quantization_level": "Q4_1"}

    def tag(self, model: FakeModel) -> dict[str, Any]:
        return {"name": model.id, "model": model.id, "modified_at": CREATED_AT,
                "size": 100_000_000, "digest": "0" * 64, "details": self.details(model)}

    def native_routes(self) -> list[Route]:
        return [
            self.route("/", self.root),
            self.route("/api/version", self.api_version),
            self.route("/api/tags", self.api_tags),
            self.route("/api/ps", self.api_ps),
            self.route("/api/show", self.api_show, "POST"),
            self.route("/api/chat", self.api_chat, "POST", inference=True),
            self.route("/api/embed", self.api_embed, "POST", inference=True),
        ]

    async def root(self, request: Request, body: Any) -> Response:
        return PlainTextResponse("Ollama is running")

    async def api_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"version": self.version})

    async def api_tags(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [self.tag(m) for m in self.models]})

    async def api_ps(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [
            {**self.tag(m), "expires_at": "2099-01-01T00:00:00Z", "size_vram": 0,
             "context_length": 2048}
            for m in self.models if m.loaded]})

    async def api_show(self, request: Request, body: Any) -> Response:
        model = self.find((body or {}).get("model") if isinstance(body, dict) else None)
        if model is None:
            return JSONResponse({"error": "model not found"}, status_code=404)
        caps = ["embedding"] if model.kind == "embeddings" else ["completion"]
        return JSONResponse({"details": self.details(model), "capabilities": caps,
                             "model_info": {"general.architecture": model.family}})

    async def api_chat(self, request: Request, body: Any) -> Response:
        body = body if isinstance(body, dict) else {}
        model = self.find(body.get("model"))
        if model is None:
            return JSONResponse({"error": f'model "{body.get("model")}" not found, try '
                                          "pulling it first"}, status_code=404)
        model.loaded = True
        text = self.reply(body.get("messages"))
        final = {"model": model.id, "created_at": CREATED_AT, "done": True,
                 "done_reason": "stop", "total_duration": 1_000_000, "load_duration": 1000,
                 "prompt_eval_count": 5, "prompt_eval_duration": 1000,
                 "eval_count": len(text.split()), "eval_duration": 1000}
        if body.get("stream") is False:
            return JSONResponse({**final, "message": {"role": "assistant", "content": text}})

        async def lines() -> AsyncIterator[str]:
            async for piece in self.pieces(text):
                yield json.dumps({"model": model.id, "created_at": CREATED_AT,
                                  "message": {"role": "assistant", "content": piece},
                                  "done": False}) + "\n"
            yield json.dumps({**final, "message": {"role": "assistant", "content": ""}}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def api_embed(self, request: Request, body: Any) -> Response:
        body = body if isinstance(body, dict) else {}
        model = self.find(body.get("model"))
        if model is None:
            return JSONResponse({"error": f'model "{body.get("model")}" not found'},
                                status_code=404)
        model.loaded = True
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        return JSONResponse({"model": model.id,
                             "embeddings": [fake_vector(str(t)) for t in texts],
                             "total_duration": 1000, "load_duration": 10,
                             "prompt_eval_count": sum(len(str(t).split()) for t in texts)})
