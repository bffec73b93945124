"""A fake hosted provider on loopback, for the consent tests (tested in test_remote_fake.py).

``FakeRemoteProvider`` is the OpenAI-compatible fake from ``tests/fakes/base.py`` (written
from OpenAI's API reference) behind what a hosted API adds: a required bearer key. It
counts TCP connections at the socket level (uvicorn's protocol ``connection_made``, so a
connection that never sends a request still counts), and the request and response body
bytes of every request, so tests can check the egress ledger against what the provider saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from tests.fakes.base import FakeModel, FakeServer
from tests.fakes.serve import AppServer

KEY = "sk-fake-remote-0123456789"
KEY_ENV = "FAKE_REMOTE_KEY"
MODEL = "remote-large"


@dataclass
class FakeRemoteProvider(FakeServer):
    key: str = KEY
    connections: int = 0
    refused_keys: int = 0
    bodies_in: list[int] = field(default_factory=list)
    bodies_out: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        received = 0
        sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            if headers.get(b"authorization") != f"Bearer {self.key}".encode():
                self.refused_keys += 1
                body = b'{"error":{"message":"invalid api key","type":"invalid_request_error"}}'
                await counting_send({"type": "http.response.start", "status": 401,
                                     "headers": [(b"content-type", b"application/json")]})
                await counting_send({"type": "http.response.body", "body": body})
                return
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.paths.append(scope["path"])
            self.bodies_in.append(received)
            self.bodies_out.append(sent)

    @property
    def prompts(self) -> list[str]:
        return [str(m.get("content")) for r in self.requests if isinstance(r.body, dict)
                for m in r.body.get("messages", []) if isinstance(m, dict)]


def counting_protocol(fake: FakeRemoteProvider) -> type[asyncio.Protocol]:
    class Counting(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            fake.connections += 1
            super().connection_made(transport)

    return Counting


def serve_remote(fake: FakeRemoteProvider) -> AppServer:
    server = AppServer(fake.asgi)
    server.server.config.http = counting_protocol(fake)
    server.server.config.interface = "asgi3"  # a bound method is not auto-detected as ASGI 3
    return server.start()


@pytest.fixture
def remote_provider() -> Iterator[tuple[FakeRemoteProvider, str]]:
    """(fake, base_url of its /v1 API) on a free loopback port."""
    fake = FakeRemoteProvider(models=[FakeModel(MODEL), FakeModel("remote-embed", "embeddings")],
                              reply_prefix="remote: ")
    server = serve_remote(fake)
    try:
        yield fake, server.base_url + "/v1"
    finally:
        server.stop()
