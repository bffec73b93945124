"""OpenAI's routes: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..backends.passthrough import wire_bytes
from ..types import ChatRequest, EmbeddingRequest, EmbeddingResponse, ModelInfo, Usage
from .context import Gateway
from .errors import InvalidRequest
from .honest import (
    check_dimensions,
    default_model,
    find_model,
    finished,
    is_default_name,
    not_found,
)
from .streaming import ChunkStreamResponse, SSEEncoder, wants_usage
from .tool_loop import requested_tools, run_tools
from .wire import JSONBody, check_model_name, parse_model, read_body, read_model, served_headers


def b64_floats(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded
    (the official SDKs ask for it by default and decode it themselves)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def model_card(m: ModelInfo) -> dict[str, Any]:
    return {"id": m.id, "object": "model", "created": 0, "owned_by": m.backend,
            "localinfer": {"backend": m.backend, "tier": m.tier,
                           "capabilities": list(m.capabilities), "loaded": m.loaded,
                           "aliases": list(m.aliases), "tools": m.tools}}


def listing_headers(models: Sequence[ModelInfo]) -> dict[str, str]:
    """A list spans backends: name them all (in tier order, once each)."""
    backends = ",".join(dict.fromkeys(m.backend for m in models)) or None
    tiers = ",".join(dict.fromkeys(m.tier for m in models)) or None
    return served_headers(backends, tiers)


def token_ids(body: bytes) -> bool:
    """Whether a body's ``input`` is token ids (``[1, 2]`` or ``[[1, 2]]``)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    value = data.get("input") if isinstance(data, dict) else None
    if not isinstance(value, list) or not value:
        return False
    items = [y for x in value for y in (x if isinstance(x, list) else [x])]
    return bool(items) and all(isinstance(i, int) and not isinstance(i, bool) for i in items)


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
        tools = requested_tools(request)
        if tools is not None:  # x-localinfer-tools: the gateway runs the tool loop
            return await run_tools(gw, request, chat, tools, sensitive)
        if chat.stream:
            chunks = await gw.stream(chat, sensitive)
            first = await gw.peek(request, chunks)
            backend, tier = (first.backend, first.tier) if first else (None, None)
            include_usage = wants_usage((chat.model_extra or {}).get("stream_options"))
            return ChunkStreamResponse(first, chunks, SSEEncoder(include_usage=include_usage),
                                       served_headers(backend, tier), gw.timeout)
        reply = await gw.until_disconnect(request, lambda: gw.answer(chat, sensitive))
        if reply is None:
            return Response(status_code=499)
        reply = finished(reply)
        headers = served_headers(reply.backend, reply.tier)
        wire = wire_bytes(reply)  # the server's own bytes, when they need no change
        if wire is not None:
            return Response(wire, media_type="application/json", headers=headers)
        return JSONBody(reply, headers=headers)

    async def embeddings(self, request: Request) -> Response:
        gw = self.gw
        body = await read_body(request, gw.settings.max_body_bytes)
        try:
            req = parse_model(body, EmbeddingRequest)
        except InvalidRequest as exc:
            if (exc.param or "").startswith("input") and token_ids(body):
                raise InvalidRequest("token-id input is not supported: send the text itself "
                                     "(a string or a list of strings)", param="input") from None
            raise
        check_model_name(req.model)
        dimensions = (req.model_extra or {}).get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int)
                                       or isinstance(dimensions, bool) or dimensions < 1):
            raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
        sensitive = gw.is_sensitive(request)

        async def answer() -> EmbeddingResponse:
            return await gw.client.embed(req.texts, model=req.model, sensitive=sensitive)

        reply = await gw.until_disconnect(request, answer)
        if reply is None:
            return Response(status_code=499)
        check_dimensions(dimensions, reply.vectors)
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
        if is_default_name(name):
            # Chat accepts `default`; so does retrieve: the card of what it resolves to.
            picked = await default_model(self.gw)
            if picked is not None:
                card = {**model_card(picked), "id": name}
                card["localinfer"]["resolves_to"] = picked.id
                return JSONBody(card, headers=served_headers(picked.backend, picked.tier))
        models = await self.gw.client.models()
        found = find_model(models, name)
        if found is None:
            raise not_found(name, models)
        return JSONBody(model_card(found), headers=served_headers(found.backend, found.tier))

