"""A protocol fake of KoboldCpp, written from its public sources and docs (koboldcpp.py:
``GET /api/extra/version`` -> ``{"result": "KoboldCpp", "version"}``, ``/api/v1/model``;
its README lists the OpenAI, Ollama and llama.cpp API emulations).

KoboldCpp imitates other servers, and so does this fake: it answers Ollama's
``/api/tags`` and ``/api/version`` and llama-server's ``/props``, which is exactly what
discovery must not be fooled by. KoboldCpp ships as a binary with a GUI and is not
installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class KoboldCppFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("koboldcpp/SmolLM2-135M-Instruct")])
    reply_prefix: str = "koboldcpp-fake: "
    owned_by: str = "koboldcpp"
    version: str = "1.80.3"

    def native_routes(self) -> list[Route]:
        return [
            self.route("/api/extra/version", self.extra_version),
            self.route("/api/v1/model", self.v1_model),
            # Imitations of other servers:
            self.route("/api/version", self.ollama_version),
            self.route("/api/tags", self.ollama_tags),
            self.route("/props", self.llamacpp_props),
        ]

    async def extra_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"result": "KoboldCpp", "version": self.version,
                             "protected": False, "txt2img": False, "vision": False})

    async def v1_model(self, request: Request, body: Any) -> Response:
        return JSONResponse({"result": self.models[0].id})

    async def ollama_version(self, request: Request, body: Any) -> Response:
        return JSONResponse({"version": "0.5.7"})

    async def ollama_tags(self, request: Request, body: Any) -> Response:
        return JSONResponse({"models": [{"name": m.id, "model": m.id, "size": 0,
                                         "digest": "", "details": {"family": m.family}}
                                        for m in self.models]})

    async def llamacpp_props(self, request: Request, body: Any) -> Response:
        return JSONResponse({"default_generation_settings": {"n_ctx": 2048},
                             "total_slots": 1, "chat_template": ""})
