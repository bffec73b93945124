"""MCP over streamable HTTP at `/mcp` under the gateway, with the official `mcp` client:
the same tools as stdio, behind the gateway's Host / Origin / token rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.gateway_harness import serve_gateway

TOOLS = {"search_documents", "ask_documents", "chat", "run_python", "list_models"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "probe", "version": "0"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}


@asynccontextmanager
async def session(url: str, headers: dict[str, str] | None = None
                  ) -> AsyncIterator[ClientSession]:
    async with httpx.AsyncClient(headers=headers, timeout=60) as http, \
            streamable_http_client(url, http_client=http) as (read, write, _), \
            ClientSession(read, write) as s:
        await s.initialize()
        yield s


def structured(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content
    return dict(result.structuredContent)


async def test_tools_over_http(run_app: Any, tmp_path: Path) -> None:
    base = serve_gateway(run_app, tmp_path)
    async with session(base + "/mcp") as s:
        assert {t.name for t in (await s.list_tools()).tools} == TOOLS
        chat = structured(await s.call_tool("chat", {"prompt": "hi"}))
        assert (chat["text"], chat["tier"]) == ("hello world", "embedded")
        models = structured(await s.call_tool("list_models", {}))
        assert {m["id"] for m in models["models"]} >= {"fake-model"}
        bad = await s.call_tool("chat", {"prompt": "hi", "model": "nope"})
        assert bad.isError


@pytest.mark.slow
async def test_run_python_over_http(run_app: Any, tmp_path: Path) -> None:
    pytest.importorskip("wasmtime")
    base = serve_gateway(run_app, tmp_path)
    async with session(base + "/mcp") as s:
        ran = structured(await s.call_tool("run_python", {"code": "print(6 * 7)"}))
    assert ran["stdout"] == "42\n" and ran["tier"] == "local"


async def test_hostile_origin_and_host_are_refused(run_app: Any, tmp_path: Path) -> None:
    base = serve_gateway(run_app, tmp_path)
    async with httpx.AsyncClient() as http:
        ok = await http.post(base + "/mcp", json=INIT, headers=MCP_HEADERS)
        assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "localinfer"
        evil = await http.post(base + "/mcp", json=INIT,
                               headers={**MCP_HEADERS, "origin": "http://evil.example"})
        assert evil.status_code == 403
        lookalike = await http.post(base + "/mcp", json=INIT,
                                    headers={**MCP_HEADERS, "origin": "http://localhost.evil.com"})
        assert lookalike.status_code == 403
        rebound = await http.post(base + "/mcp", json=INIT,
                                  headers={**MCP_HEADERS, "host": "evil.example"})
        assert rebound.status_code in (400, 403, 421)
        no_cors = await http.post(base + "/mcp", json=INIT,
                                  headers={**MCP_HEADERS, "sec-fetch-site": "cross-site"})
        assert no_cors.status_code == 403


async def test_token_is_required_when_set(run_app: Any, tmp_path: Path) -> None:
    base = serve_gateway(run_app, tmp_path, token="s3cret")
    async with httpx.AsyncClient() as http:
        refused = await http.post(base + "/mcp", json=INIT, headers=MCP_HEADERS)
        assert refused.status_code == 401
    async with session(base + "/mcp", headers={"authorization": "Bearer s3cret"}) as s:
        assert {t.name for t in (await s.list_tools()).tools} == TOOLS
