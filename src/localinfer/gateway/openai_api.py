"""OpenAI's routes: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ModelNotFound
from ..types import ChatRequest, EmbeddingRequest, EmbeddingResponse, ModelInfo, Usage
from .context import Gateway
from .streaming import ChunkStreamResponse, SSEEncoder, peek
from .wire import JSONBody, check_model_name, read_model, served_headers


def b64_floats(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded
    (the official SDKs ask for it by default and decode it themselves)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def model_card(m: ModelInfo) -> dict[str, Any]:
    return {"id": m.id, "object": "model", "created": 0, "owned_by": m.backend,
            "localinfer": {"backend": m.backend, "tier": m.tier,
                           "capabilities": list(m.capabilities), "loaded": m.loaded}}


def listing_headers(models: Sequence[ModelInfo]) -> dict[str, str]:
    """A list spans backends: name them all (in tier order, once each)."""
    backends = ",".join(dict.fromkeys(m.backend for m in models)) or None
    tiers = ",".join(dict.fromkeys(m.tier for m in models)) or None
    return served_headers(backends, tiers)


class OpenAIRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
        ]

    async def chat(self, request: Request) -> Response:
        gw = self.gw
        chat = await read_model(request, ChatRequest, gw.settings.max_body_bytes)
        check_model_name(chat.model)
        sensitive = gw.is_sensitive(request)
        if chat.stream:
            chunks = await gw.stream(chat, sensitive)
            first = await peek(chunks, gw.timeout)
            backend, tier = (first.backend, first.tier) if first else (None, None)
            return ChunkStreamResponse(first, chunks, SSEEncoder(),
                                       served_headers(backend, tier), gw.timeout)
        reply = await gw.until_disconnect(request, lambda: gw.answer(chat, sensitive))
        if reply is None:
            return Response(status_code=499)
        for choice in reply.choices:
            # SDKs type finish_reason as required; a backend that left it out stopped.
            choice.finish_reason = choice.finish_reason or "stop"
        return JSONBody(reply, headers=served_headers(reply.backend, reply.tier))

    async def embeddings(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, EmbeddingRequest, gw.settings.max_body_bytes)
        check_model_name(req.model)
        sensitive = gw.is_sensitive(request)

        async def answer() -> EmbeddingResponse:
            return await gw.client.embed(req.texts, model=req.model, sensitive=sensitive)

        reply = await gw.until_disconnect(request, answer)
        if reply is None:
            return Response(status_code=499)
        b64 = req.encoding_format == "base64"
        usage = reply.usage or Usage()
        data = {
            "object": "list",
            "model": reply.model,
            "data": [{"object": "embedding", "index": i,
                      "embedding": b64_floats(vec) if b64 else vec}
                     for i, vec in enumerate(reply.vectors)],
            "usage": {"prompt_tokens": usage.prompt_tokens,
                      "total_tokens": usage.total_tokens or usage.prompt_tokens},
        }
        return JSONBody(data, headers=served_headers(reply.backend, reply.tier))

    async def models(self, request: Request) -> Response:
        models = await self.gw.client.models()
        return JSONBody({"object": "list", "data": [model_card(m) for m in models]},
                        headers=listing_headers(models))

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        check_model_name(name, required=True)
        models = await self.gw.client.models()
        for m in models:
            if m.answers_to(name):
                return JSONBody(model_card(m), headers=served_headers(m.backend, m.tier))
        raise ModelNotFound(name, sorted({m.id for m in models}))

