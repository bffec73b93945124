"""``localinfer mcp``: an MCP (Model Context Protocol) server over stdio, on the official
``mcp`` SDK — tools ``search_documents``, ``ask_documents``, ``chat``, ``run_python`` and
``list_models``; resources for the indexed collections. Needs the ``mcp`` extra."""

from .server import LocalTools, create_server, serve_stdio

__all__ = ["LocalTools", "create_server", "serve_stdio"]
