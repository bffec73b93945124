"""``localinfer mcp``: an MCP (Model Context Protocol) server, on the official ``mcp`` SDK —
tools ``search_documents``, ``ask_documents``, ``chat``, ``run_python`` and
``list_models``; resources for the indexed collections. Over stdio (``localinfer mcp``)
and streamable HTTP at ``/mcp`` under the gateway. Needs the ``mcp`` extra; importing this
package does not (the SDK is imported when a server is built)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import LocalTools, create_server, serve_stdio

__all__ = ["LocalTools", "create_server", "serve_stdio"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
