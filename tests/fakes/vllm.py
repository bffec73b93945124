"""A protocol fake of vLLM's OpenAI-compatible server, written from vLLM's public
documentation (docs.vllm.ai "OpenAI-Compatible Server": ``/v1/models`` entries with
``owned_by: "vllm"``, ``root`` and ``max_model_len``; ``GET /version``; ``GET /health``).
vLLM needs a GPU build and cannot run here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class VLLMFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("Qwen/Qwen2.5-0.5B-Instruct")])
    reply_prefix: str = "vllm-fake: "
    owned_by: str = "vllm"
    version: str = "0.6.3"

    def model_entry(self, model: FakeModel) -> dict[str, Any]:
        return {**super().model_entry(model), "root": model.id, "parent": None,
                "max_model_len": 32768, "permission": []}

    def native_routes(self) -> list[Route]:
        return [self.route("/version", self.get_version), self.route("/health", self.health)]

    async def get_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"version": self.version})

    async def health(self, request: Request, body: Any) -> Response:
        return Response(status_code=200)
