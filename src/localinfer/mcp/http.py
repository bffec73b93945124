"""MCP over streamable HTTP at ``/mcp``, for the gateway.

Stateless and JSON-answering: each POST is one JSON-RPC exchange with a fresh session
manager, so nothing is kept between requests and the gateway needs no extra lifespan.
The gateway's own security middleware runs first — Host allow-list (DNS rebinding),
Origin allow-list, fetch metadata, bearer token — so ``/mcp`` follows exactly the rules of
``/v1`` (every MCP SDK has shipped DNS-rebinding holes; we do not rely on the SDK's).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..settings import Settings

if TYPE_CHECKING:
    from ..client import AsyncClient

MCP_PATH = "/mcp"


class _StatelessMCP:
    """The ASGI app behind ``/mcp``."""

    def __init__(self, settings: Settings, client: AsyncClient) -> None:
        self._settings, self._client = settings, client

    @functools.cached_property
    def server(self) -> Any:
        """The MCP server, built by the first /mcp request: registering its tools takes
        ~40 ms that a gateway nobody asks over MCP need not pay at start."""
        from .server import LocalTools, create_server

        return create_server(LocalTools(self._settings, self._client))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        manager = StreamableHTTPSessionManager(
            app=self.server._mcp_server, json_response=True, stateless=True,
            # Checked by the gateway's middleware, with the gateway's allow-lists.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        async with manager.run():
            await manager.handle_request(scope, receive, send)


def mcp_routes(settings: Settings, client: AsyncClient) -> list[BaseRoute]:
    """``[Route("/mcp")]``, or nothing when the ``mcp`` extra is not installed."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        return []
    return [Route(MCP_PATH, endpoint=_StatelessMCP(settings, client),
                  methods=["GET", "POST", "DELETE"])]
