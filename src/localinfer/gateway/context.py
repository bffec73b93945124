"""What every route needs: settings, the client, and typed ways to call it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from ..client import AsyncClient
from ..errors import Cancelled
from ..settings import Settings
from ..types import ChatRequest, ChatResponse, ChatStream
from .streaming import DEADLINE_KEY, DisconnectWatch, peek, until_disconnect

T = TypeVar("T")

SENSITIVE_HEADER = "x-localinfer-sensitive"


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    client: AsyncClient

    @property
    def timeout(self) -> float:
        # A whole non-streamed answer and a stream's first chunk are bounded by the
        # request deadline too (a whole stream by it as well: see peek).
        return min(self.settings.gateway_timeout, self.settings.request_deadline)

    def is_sensitive(self, request: Request) -> bool:
        """A caller marks a request that must never leave the machine with
        ``x-localinfer-sensitive: true`` (the library's ``sensitive=True``)."""
        return request.headers.get(SENSITIVE_HEADER, "").strip().lower() in {"1", "true", "yes"}

    async def stream(self, chat: ChatRequest, sensitive: bool,
                     names: Sequence[str] = ()) -> ChatStream:
        chunks = await self.client.complete(chat, stream=True, sensitive=sensitive,
                                            names=names)
        assert not isinstance(chunks, ChatResponse)
        return chunks

    async def answer(self, chat: ChatRequest, sensitive: bool,
                     names: Sequence[str] = ()) -> ChatResponse:
        reply = await self.client.complete(chat, stream=False, sensitive=sensitive,
                                           names=names)
        assert isinstance(reply, ChatResponse)
        return reply

    async def until_disconnect(self, request: Request,
                               work: Callable[[], Awaitable[T]]) -> T | None:
        return await until_disconnect(request.receive, work, self.timeout)

    async def peek(self, request: Request, stream: AsyncGenerator[T, None]) -> T | None:
        """A stream's first item, given up (and the upstream closed) as soon as the client
        leaves: queued, in prompt evaluation or generating, the upstream stops with it
        (issue 26 §2: abandoned streams ran to their end in llama.cpp before). The
        stream's request deadline starts here (the upstream is first asked now) and bounds
        the rest of it too (ChunkStreamResponse)."""
        deadline = self.settings.request_deadline
        request.scope[DEADLINE_KEY] = (asyncio.get_running_loop().time() + deadline, deadline)
        async with DisconnectWatch(request.receive) as watch:
            return await peek(stream, self.timeout)  # closes ``stream`` when cancelled
        assert watch.gone  # only a disconnect is swallowed by the watch
        raise Cancelled("the client disconnected before the first chunk")
