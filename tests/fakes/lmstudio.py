"""A protocol fake of LM Studio's server, written from LM Studio's public REST API v0
documentation (lmstudio.ai/docs/api/rest-api: ``GET /api/v0/models`` with ``type`` and
``state``) and its OpenAI compatibility page (``/v1``). LM Studio cannot be installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


def default_models() -> list[FakeModel]:
    return [FakeModel("qwen2.5-0.5b-instruct", loaded=True, family="qwen2"),
            FakeModel("text-embedding-nomic-embed-text-v1.5", kind="embeddings",
                      loaded=False, family="nomic-bert")]


@dataclass
class LMStudioFake(FakeServer):
    models: list[FakeModel] = field(default_factory=default_models)
    reply_prefix: str = "lmstudio-fake: "
    owned_by: str = "organization_owner"

    def native_routes(self) -> list[Route]:
        return [self.route("/api/v0/models", self.v0_models)]

    async def v0_models(self, request: Request, body: Any) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": m.id, "object": "model",
             "type": "embeddings" if m.kind == "embeddings" else "llm",
             "publisher": "lmstudio-community", "arch": m.family,
             "compatibility_type": "gguf", "quantization": "Q4_K_M",
             "state": "loaded" if m.loaded else "not-loaded",
             "max_context_length": 32768}
            for m in self.models]})
