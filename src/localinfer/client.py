"""The library API: ``AsyncClient`` holds the logic; ``Client`` is a thin synchronous
facade that runs the same coroutines on a private event loop thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar, overload

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .backends.base import Backend
from .discovery import Discovery, status_json_servers
from .http import EgressPolicy
from .ledger import EgressLedger
from .remote import ConsentedRemoteTier, OnConsent
from .router import BackendFactory, RemoteTier, Router
from .settings import Settings
from .types import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ServerInfo,
)

T = TypeVar("T")
MessageLike = ChatMessage | dict[str, Any]


def is_model_file(model: str | None) -> bool:
    """`-m ./x.gguf` names a file for the embedded engine rather than a model id."""
    return bool(model) and str(model).lower().endswith(".gguf")


def embedded_factories(settings: Settings) -> list[BackendFactory]:
    """The embedded tier: llama.cpp chat, and the local embedder where installed."""

    async def chat_engine() -> Backend | None:
        if not settings.embedded:
            return None
        from .backends.embedded import EmbeddedBackend

        return EmbeddedBackend(settings)

    async def embedder() -> Backend | None:
        if not settings.embedded:
            return None
        try:
            from .backends.local_embed import LocalEmbeddingBackend
        except ImportError:  # the `rag` extra is not installed
            return None
        backend: Backend = LocalEmbeddingBackend(settings)
        return backend

    return [chat_engine, embedder]


def build_messages(prompt: str | None, messages: Sequence[MessageLike] | None,
                   system: str | None) -> list[ChatMessage]:
    built = [m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m)
             for m in (messages or [])]
    if prompt is not None:
        built.append(ChatMessage(role="user", content=prompt))
    if system is not None and not any(m.role == "system" for m in built):
        built.insert(0, ChatMessage(role="system", content=system))
    return built


class AsyncClient:
    """Chat and embeddings from the best local tier.

    >>> async with AsyncClient() as client:
    ...     reply = await client.chat("Summarize this document.")
    ...     print(reply.text, reply.backend, reply.tier)
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedded: Sequence[BackendFactory] | None = None,
        remote: RemoteTier | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_consent: OnConsent | None = None,
    ) -> None:
        self.settings = settings or Settings()
        # Every outbound request is recorded in the egress ledger (`localinfer privacy`).
        self.ledger = EgressLedger.for_home(
            self.settings.home, retention_seconds=self.settings.ledger_retention_days * 86400,
            max_rows=self.settings.ledger_max_rows)
        self.policy = EgressPolicy(offline=self.settings.offline, recorders=[self.ledger])
        self.discovery = Discovery(self.settings, self.policy, transport=transport)
        factories = embedded_factories(self.settings) if embedded is None else embedded
        if remote is None:
            # Consent-gated: no connection to a provider without a grant or on_consent's yes.
            remote = ConsentedRemoteTier(self.settings, self.policy, on_consent=on_consent)
        self.router = Router(self.settings, self.policy, self.discovery,
                             embedded=factories, remote=remote)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _request(self, prompt: str | None, messages: Sequence[MessageLike] | None,
                 model: str | None, system: str | None, options: dict[str, Any]) -> ChatRequest:
        return ChatRequest(model=model, messages=build_messages(prompt, messages, system),
                           **options)

    @overload
    async def chat(self, prompt: str | None = ..., *, messages: Sequence[MessageLike] | None = ...,
                   model: str | None = ..., system: str | None = ...,
                   stream: Literal[False] = ..., sensitive: bool = ...,
                   **options: Any) -> ChatResponse: ...
    @overload
    async def chat(self, prompt: str | None = ..., *, messages: Sequence[MessageLike] | None = ...,
                   model: str | None = ..., system: str | None = ..., stream: Literal[True],
                   sensitive: bool = ..., **options: Any) -> AsyncIterator[ChatChunk]: ...

    async def chat(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[MessageLike] | None = None,
        model: str | None = None,
        system: str | None = None,
        stream: bool = False,
        sensitive: bool = False,
        **options: Any,
    ) -> ChatResponse | AsyncIterator[ChatChunk]:
        """Answer a prompt or a message list. ``stream=True`` returns an async iterator of
        chunks; closing it stops generation. ``sensitive=True`` never leaves the machine."""
        request = self._request(prompt, messages, model, system, options)
        return await self.complete(request, stream=stream, sensitive=sensitive)

    async def complete(self, request: ChatRequest, *, stream: bool = False,
                       sensitive: bool = False) -> ChatResponse | AsyncIterator[ChatChunk]:
        """The same as ``chat`` for a ready-made OpenAI-shaped request (the gateway's path)."""
        if stream:
            return self.router.stream_chat(request, sensitive=sensitive)
        return await self.router.chat(request, sensitive=sensitive)

    async def embed(self, texts: str | Sequence[str], *, model: str | None = None,
                    sensitive: bool = False) -> EmbeddingResponse:
        inputs = texts if isinstance(texts, str) else list(texts)
        return await self.router.embed(EmbeddingRequest(model=model, input=inputs),
                                       sensitive=sensitive)

    async def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        return await self.router.models(refresh=refresh)

    async def servers(self, *, refresh: bool = False) -> list[ServerInfo]:
        return await self.discovery.servers(refresh=refresh)

    async def status(self, *, refresh: bool = False) -> dict[str, Any]:
        """What is available, in the stable shape of ``localinfer status --json``."""
        servers = await self.discovery.servers(refresh=refresh)
        embedded: dict[str, Any] = {"enabled": self.settings.embedded, "models": []}
        if self.settings.embedded:
            for backend in await self.router.embedded_backends():
                for m in await backend.models():
                    embedded["models"].append({
                        "id": m.id, "capabilities": list(m.capabilities), "backend": backend.name,
                        "path": str(getattr(backend, "model_path", "") or "") or None,
                    })
        remote = [m.model_dump(include={"id", "backend"})
                  for m in await self.router.remote.models()]
        return {"servers": status_json_servers(servers), "embedded": embedded, "remote": remote}

    async def aclose(self) -> None:
        try:
            await self.router.aclose()
            close_remote = getattr(self.router.remote, "aclose", None)
            if close_remote is not None:
                await close_remote()
        finally:
            self.ledger.close()


class Client:
    """The synchronous twin of :class:`AsyncClient`, sharing its logic.

    >>> client = Client()
    >>> print(client.chat("Summarize this document.").text)
    """

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._closed = False
        self._lock = threading.Lock()

        async def build() -> AsyncClient:
            return AsyncClient(settings, **kwargs)

        self.aio: AsyncClient = self._portal.call(build)
        self.settings = self.aio.settings

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await fn()

        return self._portal.call(run)

    def chat(self, prompt: str | None = None, *, stream: bool = False,
             **kwargs: Any) -> ChatResponse | Iterator[ChatChunk]:
        if stream:
            return self._iterate(lambda: self.aio.chat(prompt, stream=True, **kwargs))
        return self._call(lambda: self.aio.chat(prompt, stream=False, **kwargs))

    def embed(self, texts: str | Sequence[str], **kwargs: Any) -> EmbeddingResponse:
        return self._call(lambda: self.aio.embed(texts, **kwargs))

    def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        return self._call(lambda: self.aio.models(refresh=refresh))

    def servers(self, *, refresh: bool = False) -> list[ServerInfo]:
        return self._call(lambda: self.aio.servers(refresh=refresh))

    def status(self, *, refresh: bool = False) -> dict[str, Any]:
        return self._call(lambda: self.aio.status(refresh=refresh))

    def _iterate(self, open_stream: Callable[[], Awaitable[AsyncIterator[T]]]) -> Iterator[T]:
        """Drive an async stream in one task on the loop thread and hand items over a
        queue, so cancellation scopes stay in one task; closing the iterator cancels it."""
        items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        finished = threading.Event()

        async def pump() -> None:
            try:
                stream = await open_stream()
                try:
                    async for item in stream:
                        items.put(("item", item))
                finally:
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()
                items.put(("end", None))
            except Exception as exc:
                items.put(("error", exc))
            finally:
                finished.set()

        future: Future[None] = self._portal.start_task_soon(pump)
        try:
            while True:
                kind, value = items.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            if not future.done():
                future.cancel()
            # Wait for the task's own clean-up (closing the backend stream) to finish, so
            # that when close() returns, generation has stopped.
            finished.wait(timeout=30)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self.aio.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)

