"""Which backend serves a request: tiers in order, model resolution, failover.

Tiers: local servers (found by discovery) → embedded engine → remote (consent-gated,
see ``remote`` below). A request's model is resolved once (``candidates``); each
candidate is checked against its backend's capabilities when it is chosen
(backends/capabilities.py: one that cannot serve the request is skipped, and the first
refusal is the error when none can); a backend that fails before its first token hands
over to the next candidate; an unknown model is an error listing what exists, never a
silent substitution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .backends.base import Backend
from .backends.capabilities import Need, Where, needs, refusal
from .backends.openai_http import OpenAIHTTPBackend
from .discovery import Discovery
from .errors import (
    BackendError,
    LocalInferError,
    ModelLoading,
    ModelNotFound,
    NoBackend,
    SensitiveDataBlocked,
    UpstreamRejected,
    UsageError,
)
from .hosts.pool import HostPool
from .hosts.spec import HostSpec
from .http import EgressPolicy
from .request_fields import check_chat
from .settings import Settings
from .types import (
    Capability,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ChatStream,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ServerInfo,
    Tier,
)

if TYPE_CHECKING:
    from .assets.disclosure import Disclosure

DEFAULT_MODEL_NAMES = frozenset({"", "default"})

# Which tiers may answer a request that names no model. Default embeddings come only
# from the embedded embedder, so an index never mixes vector spaces because a server
# happened to be running (a server's embedding model is used when named). This is the
# one place that rule lives.
DEFAULT_TIERS: dict[Capability, frozenset[Tier]] = {
    "chat": frozenset({"local", "embedded", "remote"}),
    "embeddings": frozenset({"embedded"}),
}

NO_BACKEND_HINT = (
    "no local inference backend: start a server (e.g. `ollama serve`, "
    "`llama-server -m model.gguf`), or enable the embedded engine "
    "(unset LOCALINFER_EMBEDDED=off; it needs the bundled model, `localinfer pull "
    "smollm2-135m-instruct`, or -m FILE.gguf)"
)


@dataclass(frozen=True)
class Candidate:
    backend: Backend
    model: str
    info: ModelInfo | None = None  # as the backend listed it (None: remote, configured)


BackendFactory = Callable[[], Awaitable[Backend | None]]


class RemoteTier:
    """The slot for the remote tier (remote.ConsentedRemoteTier fills it): ``candidates`` must
    return nothing, and open no connection, unless the user has consented."""

    async def candidates(self, model: str | None, capability: Capability) -> list[Candidate]:
        return []

    async def models(self) -> list[ModelInfo]:
        return []

    async def aclose(self) -> None:
        """Release the tier's connections."""


class Router:
    def __init__(
        self,
        settings: Settings,
        policy: EgressPolicy,
        discovery: Discovery,
        *,
        embedded: Sequence[BackendFactory] = (),
        remote: RemoteTier | None = None,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._discovery = discovery
        self._embedded_factories = list(embedded)
        self._embedded: list[Backend] | None = None
        self._embedded_lock = asyncio.Lock()
        self._servers: dict[str, OpenAIHTTPBackend] = {}
        # Hosts: declared trust, health and the order to try them (hosts/pool.py).
        self.hosts = HostPool(settings, policy)
        self.remote = remote or RemoteTier()

    # -- backends, tier by tier ------------------------------------------------------

    def _server_backend(self, server: ServerInfo) -> OpenAIHTTPBackend:
        # One backend (and connection pool) per host, refreshed model list each sweep.
        return self.hosts.backend(server)

    async def local_backends(self, *, refresh: bool = False) -> list[Backend]:
        servers = await self._discovery.servers(refresh=refresh, copy=False)
        # A declared host the sweep missed stays a candidate: its health decides.
        return [self._server_backend(s) for s in self.hosts.remembered(servers)]

    async def embedded_backends(self) -> list[Backend]:
        # Built on first use, not when the client is made: a client that only lists
        # servers should not pay for importing the engine.
        if self._embedded is None:
            async with self._embedded_lock:
                if self._embedded is None:
                    built = [await make() for make in self._embedded_factories]
                    self._embedded = [b for b in built if b is not None]
        return list(self._embedded)

    async def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        local = await self.local_backends(refresh=refresh)
        embedded = await self.embedded_backends()
        found: list[ModelInfo] = []
        for backend in [*local, *embedded]:
            try:
                found.extend(await backend.models())
            except BackendError:
                continue
        found.extend(await self.remote.models())
        return found

    # -- resolution ------------------------------------------------------------------

    async def candidates(self, model: str | None, capability: Capability, *,
                         sensitive: bool = False, names: Sequence[str] = ()
                         ) -> list[Candidate]:
        """Who may serve ``model``, in the order to try them: the one resolution of a
        request. ``names``: other spellings a dialect takes for the same model (Ollama's
        ``name:latest``), tried in order when nothing answers to ``model``."""
        local = await self.local_backends()
        embedded = await self.embedded_backends()
        wanted = (model or "").strip()
        default = wanted in DEFAULT_MODEL_NAMES
        spellings = [""] if default else list(dict.fromkeys([wanted, *names]))
        found: list[list[Candidate]] = [[] for _ in spellings]
        catalogue: list[ModelInfo] = []
        listed: list[Backend] = []
        held: list[ModelInfo] = []  # listed but unloaded, and the user capped loads
        for backend in [*local, *embedded]:
            try:
                models = [m for m in await backend.models() if capability in m.capabilities]
            except BackendError:
                continue
            listed.append(backend)
            catalogue.extend(models)
            if not self._settings.router_autoload:
                held.extend(m for m in models if _loads_on_request(backend, m))
                models = [m for m in models if not _loads_on_request(backend, m)]
            if default:
                pick = _default_model(models)
                if pick is not None and backend.tier in DEFAULT_TIERS[capability]:
                    found[0].append(Candidate(backend, pick.id, pick))
                continue
            for m in models:
                i = _spelled(m, spellings)
                if i is not None:
                    found[i].append(Candidate(backend, m.id, m))
        tiers: list[Candidate] = []
        for i, spelled in enumerate(spellings):
            tiers = found[i]
            if not sensitive and (not default or "remote" in DEFAULT_TIERS[capability]):
                tiers = tiers + await self.remote.candidates(spelled or None, capability)
            if tiers:
                break
        # Hosts: trust (sensitive), health, preference and load decide the order.
        tiers = await self.hosts.arrange(tiers, sensitive=sensitive)
        if tiers:
            return tiers
        held = [m for m in held if default or _spelled(m, spellings) is not None]
        if held:
            raise NoBackend(_not_loaded(wanted or "(default)", held))
        if not default:
            remote = await self.remote.models()  # asked once, only on the way to an error
            if sensitive and any(_spelled(m, spellings) is not None for m in remote):
                raise SensitiveDataBlocked(
                    f"sensitive request: '{wanted}' exists only at a remote provider, and "
                    "sensitive data never goes remote; pick a local model (`localinfer "
                    "models`)")
            remote_all = set() if sensitive else {m.id for m in remote}
            available = sorted({m.id for m in catalogue} | remote_all)
            silent = self.hosts.silent(listed, sensitive=sensitive)
            if silent:  # the model may be on a host that is down: 503, not "not found"
                raise NoBackend(_hosts_down(wanted, silent, available))
            raise ModelNotFound(wanted, available)
        if sensitive:
            raise SensitiveDataBlocked(
                "sensitive request: no local tier can serve it, and sensitive data never "
                "goes remote. " + NO_BACKEND_HINT)
        raise NoBackend(NO_BACKEND_HINT, disclosure=await self._first_run(capability))

    async def _first_run(self, capability: Capability) -> Disclosure | None:
        """What fetching the default chat model would cost, when that would give this
        request a backend (the CLI offers it; a program may show it); else None."""
        if capability != "chat" or not self._settings.embedded \
                or self._settings.embedded_model is not None:
            return None
        from .assets.bundled import MODEL_ID
        from .assets.disclosure import adisclose

        try:
            info = await adisclose(MODEL_ID, self._settings, policy=self._policy)
        except LocalInferError:  # e.g. a broken [models.*] table: the hint still holds
            return None
        return None if info.cached else info

    # -- requests --------------------------------------------------------------------

    def _failed(self, backend: Backend, exc: BackendError, tried: Tried) -> None:
        tried.errors.append(exc)
        if backend.tier == "local":
            # The server may have stopped: the next request sweeps again.
            self._discovery.invalidate()

    def _fail_over(self, backend: Backend, exc: BackendError, tried: Tried) -> None:
        """Note a failure so the next candidate is tried; raise it instead when failing
        over cannot help: mid-answer, or the request itself is wrong (the next backend
        would get the same request)."""
        if not exc.before_first_token or isinstance(exc, UpstreamRejected):
            raise exc
        self._failed(backend, exc, tried)

    def check(self, request: ChatRequest) -> ChatRequest:
        """The request-field table and bounds (request_fields.py), before any upstream:
        the request to send, without the documented drops (``store``, ``metadata``, …)."""
        passed = check_chat(request.model_extra, max_choices=self._settings.max_choices,
                            response_format=request.response_format, tools=request.tools)
        extra = request.model_extra or {}
        if passed.keys() == extra.keys() and all(passed[k] is extra[k] for k in passed):
            return request  # nothing dropped, nothing made an integer
        checked = request.model_copy()
        checked.__pydantic_extra__ = passed
        return checked

    async def chat(self, request: ChatRequest, *, sensitive: bool = False,
                   names: Sequence[str] = ()) -> ChatResponse:
        request = self.check(request)
        tried = Tried(needs(request))
        for cand in await self.candidates(request.model, "chat", sensitive=sensitive,
                                          names=names):
            try:
                if await tried.refuses(cand, request):
                    continue
                response = await cand.backend.chat(request, cand.model)
            except BackendError as exc:
                self._fail_over(cand.backend, exc, tried)
                continue
            return response.served_by(cand.backend.name, cand.backend.tier)
        raise tried.error()

    async def stream_chat(self, request: ChatRequest, *, sensitive: bool = False,
                          names: Sequence[str] = ()) -> ChatStream:
        request = self.check(request)
        tried = Tried(needs(request))
        for cand in await self.candidates(request.model, "chat", sensitive=sensitive,
                                          names=names):
            stream: ChatStream | None = None
            try:
                if await tried.refuses(cand, request):
                    continue
                stream = cand.backend.stream_chat(request, cand.model)
                # Peek: a failure before the first chunk fails over to the next candidate.
                first = await anext(aiter(stream), None)
            except BackendError as exc:
                if stream is not None:
                    await stream.aclose()
                self._fail_over(cand.backend, exc, tried)
                continue
            try:
                if first is not None:
                    yield _stamp(first, cand.backend)
                async for chunk in stream:
                    yield _stamp(chunk, cand.backend)
            finally:
                await stream.aclose()
            return
        raise tried.error()

    async def embed(self, request: EmbeddingRequest, *, sensitive: bool = False,
                    names: Sequence[str] = ()) -> EmbeddingResponse:
        tried = Tried(frozenset())
        for cand in await self.candidates(request.model, "embeddings", sensitive=sensitive,
                                          names=names):
            try:
                response = await cand.backend.embed(request, cand.model)
            except BackendError as exc:
                self._failed(cand.backend, exc, tried)
                continue
            return response.served_by(cand.backend.name, cand.backend.tier)
        raise tried.error()

    async def aclose(self) -> None:
        for backend in [*self._servers.values(), *(self._embedded or [])]:
            await backend.aclose()
        await self.hosts.aclose()


class Tried:
    """One request's way through its candidates: what it relies on, the candidates that
    refused it (capabilities) and those that failed."""

    def __init__(self, wants: frozenset[Need]) -> None:
        self.wants = wants
        self.refused: list[UsageError] = []
        self.errors: list[BackendError] = []

    async def refuses(self, cand: Candidate, request: ChatRequest) -> bool:
        """Whether ``cand`` cannot serve ``request`` (kept for the error, then skipped)."""
        if not self.wants:
            return False  # the request asks for no capability: nothing to check
        backend = cand.backend
        caps = await backend.capabilities(cand.info, self.wants)
        err = refusal(request, self.wants, caps, Where(backend.name, cand.model, backend.tier))
        if err is not None:
            self.refused.append(err)
        return err is not None

    def error(self) -> LocalInferError:
        """The error once no candidate answered: the failures when some were tried, else
        why the first candidate refused."""
        if self.errors or not self.refused:
            return _exhausted(self.errors)
        return self.refused[0]


def _spelled(model: ModelInfo, spellings: Sequence[str]) -> int | None:
    """The index of the first spelling ``model`` answers to, or None."""
    for i, name in enumerate(spellings):
        if model.answers_to(name):
            return i
    return None


def _default_model(models: list[ModelInfo]) -> ModelInfo | None:
    if not models:
        return None
    loaded = [m for m in models if m.loaded]
    return (loaded or models)[0]


# Kinds of local server that list models they have not loaded and load one when a
# request names it (llama-server in router mode): what `router_autoload = false` holds
# back. The embedded engine (of that kind too) is ours to start: never held.
LOADS_ON_REQUEST = frozenset({"llama.cpp"})


def _loads_on_request(backend: Backend, model: ModelInfo) -> bool:
    return backend.tier == "local" and backend.kind in LOADS_ON_REQUEST \
        and model.loaded is False


def _not_loaded(model: str, held: Sequence[ModelInfo]) -> str:
    where = ", ".join(sorted({f"'{m.id}' on {m.backend}" for m in held}))
    return (f"model '{model}' is not loaded ({where}), and router_autoload is off, so "
            "localinfer does not ask a router to load it: load it there (llama-server "
            "`POST /models/load`) or set LOCALINFER_ROUTER_AUTOLOAD=on")


def _stamp(chunk: ChatChunk, backend: Backend) -> ChatChunk:
    return chunk.served_by(backend.name, backend.tier)


def _hosts_down(model: str, hosts: Sequence[HostSpec], available: Sequence[str]) -> str:
    def why(h: HostSpec) -> str:
        # A host with a token may be up and refusing it: say where the token comes from.
        return f"down, or it refused ${h.token_env}" if h.token_env else "down?"

    named = "; ".join(f"{h.name or h.url} at {h.url} ({why(h)})" for h in hosts)
    elsewhere = ", ".join(available[:20]) or "none"
    return (f"model '{model}' is not on any host that answers, and it may be on a host "
            f"that did not list its models: {named}; retry when it is up (`localinfer "
            f"status`). Available now: {elsewhere}")


def _exhausted(errors: list[BackendError]) -> BackendError:
    """The error once every candidate failed. A model still loading everywhere it was
    asked for stays what it is (ModelLoading, 503: try again later), not 502."""
    if len(errors) == 1 and isinstance(errors[0], ModelLoading):
        return errors[0]
    detail = "; ".join(e.message for e in errors) or "no backend answered"
    message = f"every backend that could serve this failed: {detail}"
    if errors and all(isinstance(e, ModelLoading) for e in errors):
        return ModelLoading(message)
    return BackendError(message)
