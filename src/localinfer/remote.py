"""Remote providers, and the consent-gated remote tier the router tries last.

A provider is any hosted OpenAI-compatible API. It comes from ``[remotes.NAME]`` tables
in config.toml or from ``localinfer remote add`` (kept in ``$LOCALINFER_HOME/remotes.json``).
Its API key is named by an environment variable and read at request time only.

The gate: the router gets a remote candidate whose backend checks consent at the moment
it is actually asked to serve (after every local tier failed or could not serve), so a
request that a local tier answers never asks anything. Without a valid grant, and
without an ``on_consent`` callback saying yes, it raises ``ConsentRequired`` having
opened no connection, sent no model listing or health check, and resolved no name:
the model list comes from configuration, never from the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from .backends.base import Backend
from .backends.openai_http import OpenAIHTTPBackend
from .consent import ConsentStore
from .errors import BackendError, ConsentRequired, UsageError
from .http import EgressPolicy, Transport, network_class, parse_url
from .redact import register_secret
from .router import Candidate, RemoteTier
from .settings import Settings
from .statefile import JsonStateFile, StateFileError, want_dict
from .types import (
    Capability,
    ChatRequest,
    ChatResponse,
    ChatStream,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)

REMOTES_FILE = "remotes.json"

log = logging.getLogger(__name__)
# Seconds between consent checks while a granted remote stream waits for its next chunk.
REVOKE_CHECK = 0.25

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RemoteProvider(BaseModel):
    name: str = Field(description="Short name used in commands and answers, e.g. `openai`.")
    base_url: str = Field(description="Root of the provider's OpenAI API, e.g. "
                          "https://api.openai.com/v1.")
    key_env: str = Field(description="Environment variable holding the API key.")
    models: list[str] = Field(default_factory=list,
                              description="Model ids this provider serves (configured, "
                              "never listed from the provider).")
    source: Literal["remotes.json", "config.toml"] = "remotes.json"

    @classmethod
    def checked(cls, name: str, base_url: str, key_env: str, models: Sequence[str] = (),
                source: Literal["remotes.json", "config.toml"] = "remotes.json"
                ) -> RemoteProvider:
        """Validate user input into a provider, with one clear line per mistake."""
        if not _NAME.match(name):
            raise UsageError(f"bad provider name '{name}': use letters, digits, '.', '_', '-'")
        if not _ENV_VAR.match(key_env):
            raise UsageError(f"bad --key-env '{key_env}': give the NAME of an environment "
                             "variable (e.g. OPENAI_API_KEY), not the key itself")
        try:
            url = parse_url(base_url.strip())
        except ValueError as exc:
            raise UsageError(f"bad base URL '{base_url}': {exc}") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise UsageError(f"bad base URL '{base_url}': use http(s)://HOST[:PORT]/PATH")
        if url.query_string or url.fragment or url.user is not None \
                or url.password is not None:
            raise UsageError(f"bad base URL '{base_url}': no query, fragment or credentials "
                             "(the key comes from --key-env)")
        clean = [m.strip() for m in models if m.strip()]
        return cls(name=name, base_url=str(url).rstrip("/"), key_env=key_env,
                   models=list(dict.fromkeys(clean)), source=source)

    @property
    def plaintext_public(self) -> bool:
        """Plain http to a non-loopback host: prompts would cross the network unencrypted."""
        url = parse_url(self.base_url)
        return url.scheme == "http" and network_class(url.host or "") != "loopback"


class ProviderStore:
    """Providers from config.toml (read-only here) and remotes.json (managed by the CLI).
    A damaged remotes.json raises StateFileError (never overwritten); the remote tier
    then offers no provider at all (fail closed) while local tiers keep working."""

    def __init__(self, home: Path, configured: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = home / REMOTES_FILE
        self._configured = configured or {}
        self._from_toml: dict[str, RemoteProvider] | None = None  # config.toml's, checked once
        # The merged list, per version of the file (read() keeps one object per version).
        self._merged: tuple[object, tuple[RemoteProvider, ...]] | None = None
        self._state: JsonStateFile[dict[str, RemoteProvider]] = JsonStateFile(
            self.path, self._parse, dict,
                                    fix="fix it, or remove it and `localinfer remote add` again")

    @staticmethod
    def _parse(raw: Any) -> dict[str, RemoteProvider]:
        entries = want_dict(want_dict(raw, "the file").get("remotes") or {}, "`remotes`")
        found: dict[str, RemoteProvider] = {}
        for name, entry in entries.items():
            try:
                found[name] = RemoteProvider.model_validate(
                    {**want_dict(entry, f"remote '{name}'"), "name": name})
            except ValidationError as exc:
                raise ValueError(f"remote '{name}': {_first_error(exc)}") from None
        return found

    def _file(self) -> dict[str, RemoteProvider]:
        return dict(self._state.read())

    def _from_config(self) -> dict[str, RemoteProvider]:
        # config.toml is read once per Settings: its tables are checked once too.
        if self._from_toml is None:
            self._from_toml = self._check_config()
        return self._from_toml

    def _check_config(self) -> dict[str, RemoteProvider]:
        found: dict[str, RemoteProvider] = {}
        for name, entry in self._configured.items():
            try:
                found[name] = RemoteProvider.checked(
                    name, str(entry["base_url"]), str(entry["key_env"]),
                    [str(m) for m in entry.get("models", [])], source="config.toml")
            except KeyError as exc:
                raise UsageError(f"config.toml [remotes.{name}]: missing {exc}") from exc
        return found

    def all(self) -> list[RemoteProvider]:
        return list(self.current())

    def current(self) -> tuple[RemoteProvider, ...]:
        """Every provider, as one tuple per version of remotes.json (the same object while
        it is unchanged: the request path reads it on every request)."""
        file = self._state.read()
        cached = self._merged
        if cached is None or cached[0] is not file:
            # config.toml wins over remotes.json for the same name: it is what the user wrote.
            merged = {**file, **self._from_config()}
            cached = self._merged = (file, tuple(merged[n] for n in sorted(merged)))
        return cached[1]

    def get(self, name: str) -> RemoteProvider | None:
        return next((p for p in self.all() if p.name == name), None)

    def require(self, name: str) -> RemoteProvider:
        provider = self.get(name)
        if provider is None:
            known = ", ".join(p.name for p in self.all()) or "none"
            raise UsageError(f"no remote provider named '{name}' (configured: {known}); "
                             "add one with `localinfer remote add NAME BASE_URL --key-env VAR`")
        return provider

    def add(self, provider: RemoteProvider) -> None:
        if provider.name in self._configured:
            raise UsageError(f"remote '{provider.name}' is defined in config.toml; "
                             "edit its [remotes] table there")
        entries = self._file()
        entries[provider.name] = provider
        self._save(entries)

    def remove(self, name: str) -> bool:
        if name in self._configured:
            raise UsageError(f"remote '{name}' is defined in config.toml; remove its "
                             f"[remotes.{name}] table there")
        entries = self._file()
        if entries.pop(name, None) is None:
            return False
        self._save(entries)
        return True

    def _save(self, entries: dict[str, RemoteProvider]) -> None:
        self._state.write({"remotes": {
            n: p.model_dump(include={"base_url", "key_env", "models"})
            for n, p in sorted(entries.items())}})


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"


@dataclass(frozen=True)
class ConsentQuestion:
    """What an ``on_consent`` callback is asked: who would receive what."""

    provider: str
    base_url: str
    model: str
    purpose: Capability
    items: int
    characters: int

    @property
    def summary(self) -> str:
        what = "chat messages" if self.purpose == "chat" else "texts to embed"
        return (f"{self.items} {what} ({self.characters:,} characters) and the request "
                f"options, for model '{self.model}', to {self.provider} at {self.base_url}")


OnConsent = Callable[[ConsentQuestion], bool | Awaitable[bool]]


def _characters(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_characters(v) for v in value)
    if isinstance(value, dict):
        return sum(_characters(v) for v in value.values())
    return 0


class GatedRemoteBackend(Backend):
    """A remote provider behind the consent gate. Consent is checked on every request,
    so a revocation or an expiry takes effect at once, even in a long-running process."""

    kind = "remote"
    tier = "remote"
    supports_embeddings = True

    def __init__(self, provider: RemoteProvider, *, settings: Settings, policy: EgressPolicy,
                 consent: ConsentStore, on_consent: OnConsent | None = None,
                 transport: Transport | None = None) -> None:
        self.name = provider.name
        self.provider = provider
        self._settings = settings
        self._policy = policy
        self._consent = consent
        self._on_consent = on_consent
        self._transport = transport
        self._inner: OpenAIHTTPBackend | None = None
        self._inner_key: str | None = None

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=m, backend=self.name, tier="remote") for m in self.provider.models]

    def consent_required(self, reason: str) -> ConsentRequired:
        return ConsentRequired(
            f"{reason}; no local tier could serve this request. Allow remote provider "
            f"'{self.name}' ({self.provider.base_url}) with `localinfer consent grant "
            f"{self.name}` (add --for 1h to make it expire), or start a local server")

    async def _authorize(self, question: ConsentQuestion) -> bool:
        """Pass, or raise ConsentRequired. True when a persisted grant allowed it (so a
        revocation must stop the request), False for this session's on_consent yes."""
        # Offline mode refuses before anyone is asked: the answer could not be used.
        self._policy.check(parse_url(self.provider.base_url))
        if self._granted():
            return True
        if self._on_consent is not None:
            answer = self._on_consent(question)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer:
                return False
            raise self.consent_required(f"consent to use '{self.name}' was declined")
        grant = self._consent.get(self.name)
        if grant is None:
            reason = f"remote provider '{self.name}' has no consent grant"
        elif grant.base_url != self.provider.base_url:
            reason = (f"the consent grant for '{self.name}' was for {grant.base_url}, "
                      "and the provider now points elsewhere")
        else:
            reason = f"the consent grant for '{self.name}' has expired"
        raise self.consent_required(reason)

    def _backend(self) -> OpenAIHTTPBackend:
        # The key is read now, at request time, and lives only in this process's memory.
        key = os.environ.get(self.provider.key_env, "").strip()
        register_secret(key)
        if not key:
            raise BackendError(
                f"remote provider '{self.name}': environment variable "
                f"{self.provider.key_env} is not set (it must hold the API key)",
                backend=self.name)
        if self._inner is None or key != self._inner_key:
            s = self._settings
            self._inner = OpenAIHTTPBackend(
                name=self.name, kind=self.kind, tier="remote", api_base=self.provider.base_url,
                policy=self._policy, known_models=[], api_key=key,
                connect_timeout=s.connect_timeout, first_token_timeout=s.first_token_timeout,
                request_timeout=s.request_timeout, transport=self._transport)
            self._inner_key = key
        return self._inner

    def _chat_question(self, request: ChatRequest, model: str) -> ConsentQuestion:
        return ConsentQuestion(
            provider=self.name, base_url=self.provider.base_url, model=model, purpose="chat",
            items=len(request.messages),
            characters=_characters([m.model_dump(exclude_none=True) for m in request.messages]))

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        await self._authorize(self._chat_question(request, model))
        return await self._backend().chat(request, model)

    def _granted(self) -> bool:
        return self._consent.valid(self.name, self.provider.base_url)

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        by_grant = await self._authorize(self._chat_question(request, model))
        stream = self._backend().stream_chat(request, model)
        if not by_grant:
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    yield chunk
            return
        # A revocation ends the stream within one chunk, or within REVOKE_CHECK seconds
        # while the provider is silent: consent is re-read (one stat) at each.
        async for chunk in _while_allowed(stream, self._granted, self._revoked):
            yield chunk

    def _revoked(self) -> ConsentRequired:
        return ConsentRequired(
            f"consent for remote provider '{self.name}' was revoked (or expired) during "
            f"the answer, so it was stopped; `localinfer consent grant {self.name}` "
            "allows it again")

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        await self._authorize(ConsentQuestion(
            provider=self.name, base_url=self.provider.base_url, model=model,
            purpose="embeddings", items=len(request.texts),
            characters=_characters(request.texts)))
        return await self._backend().embed(request, model)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
            self._inner = None


async def _while_allowed(stream: ChatStream, allowed: Callable[[], bool],
                         refused: Callable[[], Exception]) -> ChatStream:
    """Pass ``stream`` through while ``allowed()``; raise ``refused()`` as soon as it is
    not. The stream is consumed by one task of its own (opened and closed there, as its
    connection's cancel scopes require), so the check also runs while it is silent."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    await queue.put(("chunk", chunk))
            await queue.put(("end", None))
        except Exception as exc:
            await queue.put(("error", exc))

    producer = asyncio.create_task(produce())
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), REVOKE_CHECK)
            except TimeoutError:
                if not allowed():
                    raise refused() from None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            if not allowed():
                raise refused()
            yield value
    finally:
        producer.cancel()
        with contextlib.suppress(BaseException):
            await producer


class ConsentedRemoteTier(RemoteTier):
    """The router's remote slot, filled from configured providers."""

    def __init__(self, settings: Settings, policy: EgressPolicy, *,
                 providers: ProviderStore | None = None, consent: ConsentStore | None = None,
                 on_consent: OnConsent | None = None,
                 transport: Transport | None = None) -> None:
        self._settings = settings
        self._policy = policy
        self.providers = providers or ProviderStore(settings.home, settings.remotes)
        self.consent = consent or ConsentStore(settings.home)
        self.on_consent = on_consent
        self._transport = transport
        self._backends: dict[str, GatedRemoteBackend] = {}
        self._retired: list[GatedRemoteBackend] = []  # replaced, closed on aclose
        self._warned: str | None = None
        self._listed: tuple[tuple[RemoteProvider, ...], list[ModelInfo]] | None = None

    def _gated(self, provider: RemoteProvider) -> GatedRemoteBackend:
        backend = self._backends.get(provider.name)
        if backend is None or backend.provider != provider:
            if backend is not None:  # changed: its connections are closed with the tier's
                self._retired.append(backend)
            backend = GatedRemoteBackend(
                provider, settings=self._settings, policy=self._policy, consent=self.consent,
                on_consent=self.on_consent, transport=self._transport)
            self._backends[provider.name] = backend
        return backend

    def _providers(self) -> tuple[RemoteProvider, ...]:
        # On the request path a damaged providers file means "no remote provider":
        # local tiers keep answering, and the problem is logged (once per version).
        try:
            return self.providers.current()
        except StateFileError as exc:
            if self._warned != str(exc):
                log.warning("%s (the remote tier is off until then)", exc.message)
                self._warned = str(exc)
            return ()

    async def models(self) -> list[ModelInfo]:
        providers = self._providers()
        if self._listed is None or self._listed[0] is not providers:
            self._listed = (providers, [ModelInfo(id=m, backend=p.name, tier="remote")
                                        for p in providers for m in p.models])
        return list(self._listed[1])

    async def candidates(self, model: str | None, capability: Capability) -> list[Candidate]:
        granted: list[Candidate] = []
        others: list[Candidate] = []
        for provider in self._providers():
            if model is None:  # the router asks only where its default rule allows
                if not provider.models:
                    continue
                pick = provider.models[0]
            elif model in provider.models:
                pick = model
            else:
                continue
            cand = Candidate(self._gated(provider), pick)
            ok = self.consent.valid(provider.name, provider.base_url)
            (granted if ok else others).append(cand)
        # Granted providers first: one without consent stops the search with
        # ConsentRequired, which must not hide a provider the user did allow.
        return granted + others

    async def aclose(self) -> None:
        for backend in [*self._backends.values(), *self._retired]:
            await backend.aclose()
        self._backends.clear()
        self._retired.clear()
