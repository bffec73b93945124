"""`localinfer mcp`: serve MCP over stdio for an agent host (Claude Desktop, Cursor, …)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import UsageError
from .common import settings_from_args


def register(sub: Any) -> None:
    p = sub.add_parser("mcp", help="serve MCP (Model Context Protocol) over stdio",
                       description="An MCP server on stdin/stdout for agent hosts: tools "
                       "search_documents, ask_documents, chat (sensitive by default), "
                       "run_python (in the WebAssembly sandbox) and list_models; resources "
                       "for the indexed collections. Notices go to stderr.")
    p.set_defaults(func=run)


def _protocol_stdout() -> None:
    """Keep the protocol's stdout for MCP alone: anything else that writes to fd 1 (a
    library, a child process) goes to stderr instead."""
    sys.stdout.flush()
    protocol = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(protocol, "w", encoding="utf-8", newline="\n")


def run(args: argparse.Namespace) -> int:
    try:
        import anyio

        from ..mcp import serve_stdio
    except ImportError as exc:
        raise UsageError("the MCP server needs the mcp extra: "
                         "pip install 'localinfer[mcp]'") from exc
    settings = settings_from_args(args)
    _protocol_stdout()
    anyio.run(serve_stdio, settings)
    return 0
