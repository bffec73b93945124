"""A protocol fake of LM Studio's server, written from LM Studio's public REST API v0
documentation (lmstudio.ai/docs/api/rest-api: ``GET /api/v0/models`` with ``type`` and
``state``), its REST API v1 (lmstudio.ai/docs/developer/rest/list: ``GET /api/v1/models``
-> ``{"models": [{"type", "key", "loaded_instances", ...}]}``), its OpenAI compatibility
page (``/v1``) and its optional API tokens (docs/developer/core/authentication: with
"Require authentication" on, every request needs ``Authorization: Bearer TOKEN``; the
refusal's body is not documented). ``v0=False`` plays a build that serves only v1.
LM Studio cannot be installed here.
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
    v0: bool = True

    def native_routes(self) -> list[Route]:
        v1 = [self.route("/api/v1/models", self.v1_native_models)]
        return [self.route("/api/v0/models", self.v0_models), *v1] if self.v0 else v1

    async def v1_native_models(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [
            {"type": "embedding" if m.kind == "embeddings" else "llm",
             "publisher": "lmstudio-community", "key": m.id, "display_name": m.id,
             "architecture": m.family, "size_bytes": 1, "format": "gguf",
             "loaded_instances": [{"id": m.id, "config": {"context_length": 4096}}]
             if m.loaded else [], "max_context_length": 32768}
            for m in self.models]})

    async def v0_models(self, request: Request, body: Any) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": m.id, "object": "model",
             "type": "embeddings" if m.kind == "embeddings" else "llm",
             "publisher": "lmstudio-community", "arch": m.family,
             "compatibility_type": "gguf", "quantization": "Q4_K_M",
             "state": "loaded" if m.loaded else "not-loaded",
             "max_context_length": 32768}
            for m in self.models]})
