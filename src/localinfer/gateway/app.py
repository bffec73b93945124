"""``create_app(settings, client)``: the gateway as an ASGI app (a factory, no globals)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..client import AsyncClient
from ..errors import BackendError, LocalInferError
from ..mcp.http import mcp_routes
from ..settings import Settings
from .completions import completion_routes
from .context import Gateway
from .errors import MethodNotAllowed, RouteNotFound, ollama_error, openai_error
from .generate import generate_routes, management_routes
from .ollama_api import OllamaRoutes
from .openai_api import OpenAIRoutes
from .openapi import openapi_json
from .pull import pull_routes
from .responses import response_routes
from .security import AccessPolicy, SecurityMiddleware
from .ui import ui_routes
from .wire import JSONBody, dumps, served_headers

log = logging.getLogger("localinfer.gateway")

SERVICE_HEADER = "x-localinfer-service"
# Which error shape a path gets: Ollama's clients read `{"error": "..."}`.
ERROR_DIALECTS = (("/api/", ollama_error),)


def error_body(path: str, exc: LocalInferError) -> dict[str, Any]:
    for prefix, shape in ERROR_DIALECTS:
        if path.startswith(prefix):
            return shape(exc)
    return openai_error(exc)


def error_response(request: Request, exc: LocalInferError) -> Response:
    backend = exc.backend if isinstance(exc, BackendError) and exc.backend else None
    return JSONBody(error_body(request.url.path, exc), status_code=exc.http_status,
                    headers=served_headers(backend, None))


async def on_localinfer_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LocalInferError)
    return error_response(request, exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if exc.status_code == 405:
        err: LocalInferError = MethodNotAllowed(f"{request.method} is not allowed on {path}")
    elif exc.status_code == 404:
        err = RouteNotFound(f"no route {path}; see /openapi.json")
    else:
        err = LocalInferError(str(exc.detail))
        err.http_status = exc.status_code
    response = error_response(request, err)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_disconnect(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody is listening; uvicorn drops it


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a client mistake: one line to the client, the traceback to the log.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    err = LocalInferError(f"internal error: {type(exc).__name__}")
    return error_response(request, err)


def create_app(settings: Settings, client: AsyncClient, *,
               close_client: bool = False) -> Starlette:
    """The gateway over ``client``'s router. ``close_client``: close it on shutdown
    (``localinfer serve`` hands its client over; tests usually keep theirs)."""
    policy = AccessPolicy.from_settings(settings)
    gw = Gateway(settings=settings, client=client)
    openapi = openapi_json(settings.max_choices)
    health = dumps({"status": "ok", "service": "localinfer", "version": __version__,
                    "tiers": {"local": "discovery", "embedded": settings.embedded}})

    async def get_health(request: Request) -> Response:
        return Response(health, media_type="application/json",
                        headers={SERVICE_HEADER: "gateway", **served_headers(None, None)})

    async def get_openapi(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def get_root(request: Request) -> Response:
        return JSONBody({"service": "localinfer", "version": __version__, "openai": "/v1",
                         "ollama": "/api", "openapi": "/openapi.json", "health": "/health",
                         "ui": "/ui/"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_client:
                await client.aclose()

    routes = [
        Route("/health", get_health, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
        Route("/", get_root, methods=["GET"]),
        *OpenAIRoutes(gw).routes(),
        *completion_routes(gw),
        *response_routes(gw),
        *OllamaRoutes(gw).routes(),
        *generate_routes(gw),
        *pull_routes(gw),
        *management_routes(),
        *ui_routes(settings),
        *mcp_routes(settings, client),  # MCP over streamable HTTP
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, policy=policy, error_body=error_body)],
        exception_handlers={
            LocalInferError: on_localinfer_error,
            HTTPException: on_http_error,
            ClientDisconnect: on_disconnect,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
