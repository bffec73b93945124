"""The library API: ``AsyncClient`` holds the logic; ``Client`` is a thin synchronous
facade that runs the same coroutines on a private event loop thread."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, Literal, TypeVar, overload

from .audit import Exposure
from .backends.base import Backend
from .discovery import Discovery, status_json_servers
from .errors import UsageError
from .http import Transport
from .ledger import EgressLedger
from .messages import MessageLike, build_messages
from .remote import ConsentedRemoteTier, OnConsent
from .router import BackendFactory, RemoteTier, Router
from .settings import Settings
from .syncbridge import LoopThread
from .tools.loop import DEFAULT_MAX_ROUNDS, arun_with_tools
from .tools.tool import executes_tools
from .types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ChatStream,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ServerInfo,
)

T = TypeVar("T")
# Seconds a close (explicit, by the garbage collector or at exit) waits for backends.
CLOSE_TIMEOUT: Final = 10.0


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
        transport: Transport | None = None,
        on_consent: OnConsent | None = None,
    ) -> None:
        self.settings = settings or Settings()
        # Every outbound request is recorded in the egress ledger (`localinfer privacy`).
        self.ledger = EgressLedger.from_settings(self.settings)
        self.policy = self.ledger.policy(self.settings)
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
    async def chat(self, prompt: str | None = ..., *, stream: Literal[False] = ...,
                   messages: Sequence[MessageLike] | None = ..., model: str | None = ...,
                   system: str | None = ..., sensitive: bool = ...,
                   temperature: float | None = ..., top_p: float | None = ...,
                   max_tokens: int | None = ..., stop: str | list[str] | None = ...,
                   seed: int | None = ..., tools: list[dict[str, Any]] | None = ...,
                   tool_choice: str | dict[str, Any] | None = ...,
                   response_format: dict[str, Any] | None = ...,
                   **options: Any) -> ChatResponse: ...
    @overload
    async def chat(self, prompt: str | None = ..., *, stream: Literal[True],
                   messages: Sequence[MessageLike] | None = ..., model: str | None = ...,
                   system: str | None = ..., sensitive: bool = ...,
                   temperature: float | None = ..., top_p: float | None = ...,
                   max_tokens: int | None = ..., stop: str | list[str] | None = ...,
                   seed: int | None = ..., tools: list[dict[str, Any]] | None = ...,
                   tool_choice: str | dict[str, Any] | None = ...,
                   response_format: dict[str, Any] | None = ...,
                   **options: Any) -> ChatStream: ...

    async def chat(
        self,
        prompt: str | None = None,
        *,
        stream: bool = False,
        messages: Sequence[MessageLike] | None = None,
        model: str | None = None,
        system: str | None = None,
        sensitive: bool = False,
        **options: Any,
    ) -> ChatResponse | ChatStream:
        """Answer a prompt or a message list. ``stream=True`` returns an async iterator of
        chunks; closing it stops generation. ``sensitive=True`` never leaves the machine.
        Other keywords are OpenAI request fields (``temperature``, ``max_tokens``, …).

        ``tools`` holding :class:`localinfer.tools.Tool` objects (``run_python``, or your
        ``@tool`` functions) are *executed*: each call the model makes runs locally and
        its result goes back to the model until it answers (at most ``max_tool_rounds``,
        default 4); ``reply.tool_run`` lists every call and result. Plain tool dicts are
        sent as OpenAI's API does: their calls come back to you unexecuted."""
        if executes_tools(options.get("tools")):
            return await self._chat_with_tools(prompt, stream, messages, model, system,
                                               sensitive, options)
        request = self._request(prompt, messages, model, system, options)
        if stream:
            return await self.complete(request, stream=True, sensitive=sensitive)
        return await self.complete(request, stream=False, sensitive=sensitive)

    async def _chat_with_tools(self, prompt: str | None, stream: bool,
                               messages: Sequence[MessageLike] | None, model: str | None,
                               system: str | None, sensitive: bool,
                               options: dict[str, Any]) -> ChatResponse:
        if stream:
            raise UsageError("executing tools needs stream=False (the answer is known only "
                             "after the tool rounds); pass plain tool dicts to stream calls")
        tools = options.pop("tools")
        rounds = options.pop("max_tool_rounds", DEFAULT_MAX_ROUNDS)
        result = await arun_with_tools(self, prompt, messages=messages, system=system,
                                       tools=tools, max_rounds=rounds, model=model,
                                       sensitive=sensitive, **options)
        return result.reply

    @overload
    async def complete(self, request: ChatRequest, *, stream: Literal[False] = ...,
                       sensitive: bool = ..., names: Sequence[str] = ...) -> ChatResponse: ...
    @overload
    async def complete(self, request: ChatRequest, *, stream: Literal[True],
                       sensitive: bool = ..., names: Sequence[str] = ...) -> ChatStream: ...

    async def complete(self, request: ChatRequest, *, stream: bool = False,
                       sensitive: bool = False,
                       names: Sequence[str] = ()) -> ChatResponse | ChatStream:
        """The same as ``chat`` for a ready-made OpenAI-shaped request (the gateway's path).
        ``names``: other spellings of ``request.model`` a dialect accepts (Ollama's
        ``name:latest``), resolved with it in one step by the router."""
        if stream:
            return self.router.stream_chat(request, sensitive=sensitive, names=names)
        return await self.router.chat(request, sensitive=sensitive, names=names)

    async def embed(self, texts: str | Sequence[str], *, model: str | None = None,
                    sensitive: bool = False, names: Sequence[str] = ()) -> EmbeddingResponse:
        inputs = texts if isinstance(texts, str) else list(texts)
        return await self.router.embed(EmbeddingRequest(model=model, input=inputs),
                                       sensitive=sensitive, names=names)

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
                if hasattr(backend, "compute_report") and "compute" not in embedded:
                    embedded["compute"] = await backend.compute_report()
        remote = [m.model_dump(include={"id", "backend"})
                  for m in await self.router.remote.models()]
        await self.router.local_backends()  # so every server found is a host in the report
        return {"servers": status_json_servers(servers), "embedded": embedded, "remote": remote,
                "hosts": self.router.hosts.report(),
                "exposure": [e.to_json() for e in await self.exposure()]}

    async def exposure(self) -> list[Exposure]:
        """Inference servers on this machine: reachable beyond it? answering without a
        password? (``localinfer audit``; see ``localinfer.audit``)."""
        from .audit import audit

        return await audit(await self.discovery.servers(), self.policy)

    async def aclose(self) -> None:
        try:
            await self.router.aclose()
            await self.router.remote.aclose()
        finally:
            self.ledger.close()


class Client:
    """The synchronous twin of :class:`AsyncClient`, sharing its logic: the same
    coroutines run on a private event loop thread.

    >>> client = Client()
    >>> print(client.chat("Summarize this document.").text)

    Closing is optional: a client that is garbage-collected, or still referenced when
    the interpreter exits, closes itself (its loop thread is a daemon, so it never keeps
    a script alive). ``with Client() as client:`` closes it at the end of the block.
    """

    def __init__(self, settings: Settings | None = None, *,
                 embedded: Sequence[BackendFactory] | None = None,
                 remote: RemoteTier | None = None,
                 transport: Transport | None = None,
                 on_consent: OnConsent | None = None) -> None:
        self._loop = LoopThread("localinfer-client")

        async def build() -> AsyncClient:
            return AsyncClient(settings, embedded=embedded, remote=remote,
                               transport=transport, on_consent=on_consent)

        try:
            self.aio: AsyncClient = self._loop.call(build)
        except BaseException:
            self._loop.stop()
            raise
        self.settings = self.aio.settings
        # Holds no reference to self, so the client can be collected; runs at most once.
        self._finalizer = weakref.finalize(self, _close_quietly, self._loop, self.aio)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine function that uses ``self.aio`` on this client's loop (how
        sync helpers built on AsyncClient, such as the tool loop, stay one code path)."""
        return self._loop.call(fn)

    @overload
    def chat(self, prompt: str | None = ..., *, stream: Literal[False] = ...,
             messages: Sequence[MessageLike] | None = ..., model: str | None = ...,
             system: str | None = ..., sensitive: bool = ...,
             temperature: float | None = ..., top_p: float | None = ...,
             max_tokens: int | None = ..., stop: str | list[str] | None = ...,
             seed: int | None = ..., tools: list[dict[str, Any]] | None = ...,
             tool_choice: str | dict[str, Any] | None = ...,
             response_format: dict[str, Any] | None = ...,
             **options: Any) -> ChatResponse: ...
    @overload
    def chat(self, prompt: str | None = ..., *, stream: Literal[True],
             messages: Sequence[MessageLike] | None = ..., model: str | None = ...,
             system: str | None = ..., sensitive: bool = ...,
             temperature: float | None = ..., top_p: float | None = ...,
             max_tokens: int | None = ..., stop: str | list[str] | None = ...,
             seed: int | None = ..., tools: list[dict[str, Any]] | None = ...,
             tool_choice: str | dict[str, Any] | None = ...,
             response_format: dict[str, Any] | None = ...,
             **options: Any) -> Iterator[ChatChunk]: ...

    def chat(self, prompt: str | None = None, *, stream: bool = False,
             **kwargs: Any) -> ChatResponse | Iterator[ChatChunk]:
        """See :meth:`AsyncClient.chat`; ``stream=True`` returns a plain iterator whose
        ``close()`` (or leaving the ``for`` loop and dropping it) stops generation."""
        if stream:
            return self._loop.iterate(lambda: self.aio.chat(prompt, stream=True, **kwargs))
        return self.run(lambda: self.aio.chat(prompt, stream=False, **kwargs))

    def embed(self, texts: str | Sequence[str], *, model: str | None = None,
              sensitive: bool = False) -> EmbeddingResponse:
        return self.run(lambda: self.aio.embed(texts, model=model, sensitive=sensitive))

    def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        return self.run(lambda: self.aio.models(refresh=refresh))

    def servers(self, *, refresh: bool = False) -> list[ServerInfo]:
        return self.run(lambda: self.aio.servers(refresh=refresh))

    def status(self, *, refresh: bool = False) -> dict[str, Any]:
        return self.run(lambda: self.aio.status(refresh=refresh))

    def exposure(self) -> list[Exposure]:
        return self.run(self.aio.exposure)

    def close(self) -> None:
        """Close backends (the embedded worker stops) and the loop thread. Idempotent."""
        self._finalizer()


def _close_quietly(loop: LoopThread, aio: AsyncClient) -> None:
    """Close ``aio`` on its loop, then stop the loop: from close(), from the garbage
    collector, or at interpreter exit. Never raises (it may run at shutdown)."""
    try:
        if loop.on_loop_thread():
            # Collected on its own loop thread: it cannot wait for itself there.
            loop.loop.create_task(aio.aclose()).add_done_callback(lambda _: loop.stop())
            return
        with contextlib.suppress(Exception):
            loop.call(aio.aclose, timeout=CLOSE_TIMEOUT)
        loop.stop()
    except Exception:
        pass
