"""A protocol fake of text-generation-webui's OpenAI extension, written from its public
sources (extensions/openai/models.py and script.py: ``GET /v1/internal/model/info`` ->
``{"model_name", "lora_names"}``; ``/v1/models`` entries with ``owned_by: "user"``).
text-generation-webui needs its own large install and is not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class TextgenFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("SmolLM2-135M-Instruct-Q4_1.gguf"),
                                 FakeModel("Llama-3.2-1B-Instruct-Q4_K_M.gguf", loaded=False)])
    reply_prefix: str = "textgen-fake: "
    owned_by: str = "user"

    def native_routes(self) -> list[Route]:
        return [self.route("/v1/internal/model/info", self.model_info)]

    async def model_info(self, request: Request, body: Any) -> Response:
        current = next((m.id for m in self.models if m.loaded), "None")
        return JSONResponse({"model_name": current, "lora_names": []})
