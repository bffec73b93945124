"""The routes: ``POST /v1/responses`` (JSON, or typed SSE events) and
``GET /v1/responses/{response_id}`` (a response this gateway keeps)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...request_fields import check_extras
from ..context import Gateway
from ..errors import RouteNotFound
from ..streaming import ChunkStreamResponse
from ..wire import JSONBody, check_model_name, read_model, served_headers
from .events import ResponseEventEncoder
from .output import reply_output, usage_of
from .request import ResponsesRequest, refuse
from .store import ResponseStore
from .turn import translate


async def create(gw: Gateway, store: ResponseStore, request: Request) -> Response:
    req = await read_model(request, ResponsesRequest, gw.settings.max_body_bytes)
    check_model_name(req.model)
    refuse(req)
    check_extras("responses", req.model_extra)
    turn = translate(req, store)
    sensitive = gw.is_sensitive(request)

    def keep(response: dict[str, Any]) -> None:
        turn.keep(store, response)

    if req.stream:
        chunks = await gw.stream(turn.chat, sensitive)
        first = await gw.peek(request, chunks)
        backend, tier = (first.backend, first.tier) if first else (None, None)
        encoder = ResponseEventEncoder(turn, req.model or (first.model if first else ""), keep)
        return ChunkStreamResponse(first, chunks, encoder, served_headers(backend, tier),
                                   gw.timeout)
    reply = await gw.until_disconnect(request, lambda: gw.answer(turn.chat, sensitive))
    if reply is None:
        return Response(status_code=499)
    output = reply_output(reply)
    finish = reply.choices[0].finish_reason if reply.choices else None
    response = turn.response(req.model or reply.model, "completed", output,
                             usage_of(reply.usage, 0), finish)
    keep(response)
    return JSONBody(response, headers=served_headers(reply.backend, reply.tier))


def response_routes(gw: Gateway) -> list[Route]:
    store = ResponseStore()  # one per gateway: lives and dies with it

    async def post(request: Request) -> Response:
        return await create(gw, store, request)

    async def get(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        kept = store.get(response_id)
        if kept is None:
            raise RouteNotFound(f"response '{response_id[:80]}' is not kept by this gateway")
        return JSONBody(kept.response)

    return [Route("/v1/responses", post, methods=["POST"]),
            Route("/v1/responses/{response_id}", get, methods=["GET"])]
