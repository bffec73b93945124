"""Ollama's ``POST /api/generate``: a prompt (and optional ``system``) answered through the
same router as chat, streamed as NDJSON by default.

The prompt becomes one user message, so the backend's chat template applies (as Ollama's
non-raw mode applies the model's template). What cannot be honoured is a 400 in Ollama's
error shape, never silently dropped: ``raw: true`` (no backend path here bypasses the
chat template), ``images`` (the models served read text), ``suffix`` (fill-in-the-middle),
``template`` overrides, ``context`` token ids (never returned, so never needed) and
``think: true``. An empty prompt is Ollama's preload: the model is resolved (404 if
unknown) and the answer is ``done: true`` with ``done_reason: "load"`` (``"unload"``
with ``keep_alive: 0``); the engine itself loads on the first real request.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import LocalInferError
from ..request_fields import check_extras
from ..types import ChatResponse
from .context import Gateway
from .errors import InvalidRequest
from .honest import find_model, not_found
from .ollama_ndjson import DONE_REASONS, NDJSONEncoder, Timing, now_iso, ollama_answer
from .ollama_requests import OllamaOptions, _Open
from .ollama_translate import build_chat, chat_fields
from .wire import JSONBody, check_model_name, read_model, served_headers


class OllamaGenerateRequest(_Open):
    model: str = Field(min_length=1)
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = None
    images: list[str] | None = None
    format: str | dict[str, Any] | None = None
    options: OllamaOptions | None = None
    template: str | None = None
    context: list[int] | None = None
    # Ollama streams unless told not to.
    stream: bool = True
    raw: bool | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None


def refuse_unsupported(req: OllamaGenerateRequest) -> None:
    if req.raw:
        raise InvalidRequest("raw: true is not supported: localinfer always applies the "
                             "backend's chat template; send raw: false (or omit it)",
                             param="raw")
    if req.images:
        raise InvalidRequest("images are not supported: the models localinfer serves read "
                             "text only", param="images")
    if req.suffix:
        raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")
    if req.template:
        raise InvalidRequest("template overrides are not supported: the backend applies its "
                             "own chat template", param="template")
    if req.context:
        raise InvalidRequest("context (token ids of an earlier answer) is not kept by "
                             "localinfer; send the conversation to /api/chat instead",
                             param="context")
    if req.think not in (None, False):
        raise InvalidRequest("think is not supported by the models localinfer serves",
                             param="think")


def is_unload(keep_alive: float | str | None) -> bool:
    return keep_alive in (0, "0", "0s", "0m")


class GenerateEncoder(NDJSONEncoder):
    """Ollama's generate stream: ``{"response": "piece", "done": false}`` lines, then one
    with ``done: true``, the stop reason and counts (no ``context``: ids are not kept)."""

    def piece(self, text: str) -> dict[str, Any]:
        return {"response": text}

    def final(self) -> dict[str, Any]:
        return {"response": ""}


def generate_reply(reply: ChatResponse, model: str, timing: Timing) -> dict[str, Any]:
    choice = reply.choices[0] if reply.choices else None
    usage = reply.usage
    finish = choice.finish_reason if choice else None
    return {"model": model, "created_at": now_iso(), "response": reply.text, "done": True,
            "done_reason": DONE_REASONS.get(finish or "", "stop"),
            **timing.stats(usage.prompt_tokens if usage else 0,
                           usage.completion_tokens if usage else 0)}


async def generate(gw: Gateway, request: Request) -> Response:
    req = await read_model(request, OllamaGenerateRequest, gw.settings.max_body_bytes)
    check_model_name(req.model, required=True)
    refuse_unsupported(req)
    check_extras("ollama", req.model_extra)
    if not req.prompt:
        models = await gw.client.models()
        found = find_model(models, req.model, ollama=True)
        if found is None:
            raise not_found(req.model, models)
        return JSONBody({"model": req.model, "created_at": now_iso(), "response": "",
                         "done": True, "done_reason": "unload" if is_unload(req.keep_alive)
                         else "load"}, headers=served_headers(found.backend, found.tier))
    messages = [{"role": "system", "content": req.system}] if req.system else []
    messages.append({"role": "user", "content": req.prompt})
    chat = build_chat({"model": req.model, "messages": messages,
                       **chat_fields(req.options, req.format), "stream": req.stream})
    return await ollama_answer(
        gw, request, chat, gw.is_sensitive(request), stream=req.stream,
        encoder=GenerateEncoder(req.model),
        whole=lambda reply, timing: generate_reply(reply, req.model, timing))


def generate_routes(gw: Gateway) -> list[Route]:
    async def route(request: Request) -> Response:
        return await generate(gw, request)

    return [Route("/api/generate", route, methods=["POST"])]


# Ollama's model-management routes localinfer does not serve over HTTP (/api/pull and
# /api/delete are served: pull.py): each is a 501 in
# Ollama's error shape naming the command that does the job. No request body is read
# (Ollama's own /api/create parsed model files from it: CVE-2026-7482).
MANAGEMENT: dict[str, str] = {
    "/api/copy": "models keep their own names; there are no copies to make",
    "/api/create": "point localinfer at a GGUF file instead: `localinfer chat -m PATH` or "
                   "LOCALINFER_EMBEDDED_MODEL",
    "/api/push": "localinfer publishes no models",
}


class NotImplementedRoute(LocalInferError):
    http_status = 501
    error_type = "invalid_request_error"
    code = "not_implemented"


def management_routes() -> list[Route]:
    async def refuse(request: Request) -> Response:
        path = request.url.path
        raise NotImplementedRoute(f"{request.method} {path} is not supported by localinfer's "
                                  f"gateway: {MANAGEMENT[path]}")

    return [Route(path, refuse, methods=["POST", "DELETE"]) for path in MANAGEMENT]
