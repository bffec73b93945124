"""Ollama's model-management routes: ``/api/tags``, ``/api/ps``, ``/api/show`` and
``/api/version``, from the models every tier lists."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..types import ModelInfo
from .context import Gateway
from .honest import ModelFiles, digest_and_size, find_model, model_files, not_found
from .ollama_requests import OllamaModelRequest
from .openai_api import listing_headers
from .wire import JSONBody, check_model_name, read_model, served_headers

# The Ollama API level these routes implement (apps gate features on it: /api/embed
# arrived in 0.3, tool calls in 0.3, structured outputs in 0.5).
OLLAMA_API_VERSION = "0.6.0"
# Our capability names → Ollama's (anything else a model lists is an embedding model's).
CAPABILITIES = {"chat": "completion"}


def details(m: ModelInfo) -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf" if m.tier == "embedded" else "",
            "family": "", "families": None, "parameter_size": "", "quantization_level": ""}


def tag(m: ModelInfo, files: ModelFiles | None = None) -> dict[str, Any]:
    digest, size = digest_and_size(m, files or {})
    return {"name": m.id, "model": m.id, "modified_at": "1970-01-01T00:00:00Z", "size": size,
            "digest": digest, "details": details(m),
            "localinfer": {"backend": m.backend, "tier": m.tier,
                           "capabilities": list(m.capabilities)}}


class OllamaModelRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/version", self.version, methods=["GET"]),
        ]

    async def tags(self, request: Request) -> Response:
        models = await self.gw.client.models()
        files = await model_files(self.gw)
        return JSONBody({"models": [tag(m, files) for m in models]},
                        headers=listing_headers(models))

    async def ps(self, request: Request) -> Response:
        models = [m for m in await self.gw.client.models() if m.loaded]
        files = await model_files(self.gw)
        running = [{**tag(m, files), "expires_at": "2999-01-01T00:00:00Z", "size_vram": 0}
                   for m in models]
        return JSONBody({"models": running}, headers=listing_headers(models))

    async def show(self, request: Request) -> Response:
        req = await read_model(request, OllamaModelRequest, self.gw.settings.max_body_bytes)
        name = check_model_name(req.wanted, required=True) or ""
        models = await self.gw.client.models()
        m = find_model(models, name, ollama=True)
        if m is None:
            raise not_found(name, models)
        caps = [CAPABILITIES.get(c, "embedding") for c in m.capabilities]
        return JSONBody({"modelfile": "", "parameters": "", "template": "",
                         "details": details(m), "model_info": {},
                         "capabilities": caps, "modified_at": "1970-01-01T00:00:00Z"},
                        headers=served_headers(m.backend, m.tier))

    async def version(self, request: Request) -> Response:
        return JSONBody({"version": OLLAMA_API_VERSION, "localinfer": __version__})
