"""Ollama's native routes, so Ollama-only apps (and the ``ollama`` Python client) work
unchanged: ``/api/chat`` (NDJSON stream by default), ``/api/embed``, ``/api/embeddings``,
and the model routes of ollama_models.py (``/api/tags``, ``/api/show``, ``/api/ps``,
``/api/version``).

Requests (ollama_requests.py) are translated to OpenAI's shape (ollama_translate.py) and
served by the same router; answers are NDJSON or one JSON object (ollama_ndjson.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .context import Gateway
from .honest import check_dimensions, ollama_names
from .ollama_models import OllamaModelRoutes
from .ollama_ndjson import NDJSONEncoder, Timing, chat_reply, ollama_answer
from .ollama_requests import OllamaChatRequest, OllamaEmbeddingsRequest, OllamaEmbedRequest
from .ollama_translate import to_chat_request
from .wire import JSONBody, check_model_name, read_model, served_headers


class OllamaRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/api/embeddings", self.embeddings, methods=["POST"]),
            *OllamaModelRoutes(self.gw).routes(),
        ]

    async def chat(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, OllamaChatRequest, gw.settings.max_body_bytes)
        check_model_name(req.model, required=True)
        chat = to_chat_request(req)
        return await ollama_answer(
            gw, request, chat, gw.is_sensitive(request), stream=req.stream,
            encoder=NDJSONEncoder(req.model),
            whole=lambda reply, timing: chat_reply(reply, req.model, timing))

    async def embed(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, OllamaEmbedRequest, gw.settings.max_body_bytes)
        check_model_name(req.model, required=True)
        texts = [req.input] if isinstance(req.input, str) else req.input
        timing = Timing()
        if not texts:
            return JSONBody({"model": req.model, "embeddings": [], **timing.stats(0, 0)})
        reply = await gw.until_disconnect(
            request, lambda: gw.client.embed(texts, model=req.model, names=ollama_names(
                req.model), sensitive=gw.is_sensitive(request)))
        if reply is None:
            return Response(status_code=499)
        check_dimensions(req.dimensions, reply.vectors)
        usage = reply.usage.prompt_tokens if reply.usage else 0
        stats = timing.stats(usage, 0)
        return JSONBody({"model": req.model, "embeddings": reply.vectors,
                         "total_duration": stats["total_duration"], "load_duration": 0,
                         "prompt_eval_count": usage},
                        headers=served_headers(reply.backend, reply.tier))

    async def embeddings(self, request: Request) -> Response:
        gw = self.gw
        req = await read_model(request, OllamaEmbeddingsRequest, gw.settings.max_body_bytes)
        check_model_name(req.model, required=True)
        reply = await gw.until_disconnect(
            request, lambda: gw.client.embed([req.prompt], model=req.model, names=ollama_names(
                req.model), sensitive=gw.is_sensitive(request)))
        if reply is None:
            return Response(status_code=499)
        return JSONBody({"embedding": reply.vectors[0] if reply.vectors else []},
                        headers=served_headers(reply.backend, reply.tier))
