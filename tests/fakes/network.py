"""A stand-in network for httpx.MockTransport: canned answers per (host, port).

A port with no answers refuses the connection; every request is recorded, so tests can
check what was (and was not) sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.support.transport import mock_transport

Reply = tuple[int, Any, dict[str, str]]  # status, JSON value or text, headers
Routes = dict[str, Reply]


def ok(body: Any, **headers: str) -> Reply:
    return (200, body, headers)


class FakeNetwork:
    """``held=True``: every answer waits until ``release()`` (``arrived`` is set by the
    first request), so a test can act while a sweep is in flight without timing it."""

    def __init__(self, servers: dict[tuple[str, int], Routes], *, held: bool = False,
                 slow_paths: dict[str, float] | None = None) -> None:
        self.servers = servers
        # path -> seconds before it answers (to play a server stuck on one route)
        self.slow_paths = slow_paths or {}
        self.seen: list[httpx.URL] = []
        self.arrived = asyncio.Event()
        self._open = asyncio.Event()
        if not held:
            self._open.set()
        # A port with no server refuses the TCP check too, as on a real machine.
        self.checked: list[tuple[str, int]] = []  # the TCP checks, in order
        self.transport = mock_transport(self.handle, self._reachable)

    def _reachable(self, host: str, port: int) -> bool:
        self.checked.append((host, port))
        return (host, port) in self.servers

    def release(self) -> None:
        self._open.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url)
        self.arrived.set()
        await self._open.wait()
        delay = self.slow_paths.get(request.url.path)
        if delay:
            await asyncio.sleep(delay)
        routes = self.servers.get((request.url.host, request.url.port or 80))
        if routes is None:
            raise httpx.ConnectError("connection refused", request=request)
        status, body, headers = routes.get(request.url.path, (404, {"error": "not found"}, {}))
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, content=json.dumps(body).encode(),
                              headers={"content-type": "application/json", **headers})
