"""One host's backend: the OpenAI-compatible HTTP backend, plus what routing needs —
the host's name and trust, a bearer token read from the environment at request time,
an outstanding-request count, and passive health marking."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from .. import trace
from ..backends.openai_http import OpenAIHTTPBackend
from ..errors import BackendError
from ..http import EgressPolicy, HTTPError
from ..settings import Settings
from ..types import ChatRequest, ChatResponse, ChatStream, ModelInfo, ServerInfo
from .health import Health, marks_down
from .spec import HostSpec


class EnvBearer:
    """``Authorization: Bearer $VAR``, read when each request is sent (an ``AuthHook``):
    the token is never copied into config, state files, logs or the ledger."""

    def __init__(self, variable: str) -> None:
        self.variable = variable

    def __call__(self, url: Any) -> Mapping[str, str]:
        token = os.environ.get(self.variable, "").strip()
        return {"authorization": f"Bearer {token}"} if token else {}


class HostBackend(OpenAIHTTPBackend):
    def __init__(self, spec: HostSpec, server: ServerInfo, health: Health,
                 settings: Settings, policy: EgressPolicy) -> None:
        super().__init__(name=spec.name or server.name, kind=server.kind, tier="local",
                         api_base=server.api_base, policy=policy,
                         connect_timeout=settings.connect_timeout,
                         first_token_timeout=settings.first_token_timeout,
                         request_timeout=settings.request_timeout,
                         max_response_bytes=settings.max_response_bytes)
        self.spec = spec
        self.health = health
        self.source: ServerInfo | None = None  # the sweep's server it last took models from
        self._probe_timeout = max(settings.discovery_timeout, settings.connect_timeout)
        if spec.token_env:
            self._http.auth = EnvBearer(spec.token_env)

    @property
    def host(self) -> str:
        return self.name

    def set_known_models(self, models: list[ModelInfo]) -> None:  # type: ignore[override]
        super().set_known_models([m.model_copy(update={"backend": self.name}) for m in models])

    def seen(self, server: ServerInfo) -> None:
        """Take the model list of this sweep's ``server`` (shared, never changed here);
        once per sweep, not per request."""
        if server is not self.source:
            self.source = server
            self.set_known_models(server.models)

    def _failed(self, exc: BackendError) -> None:
        if marks_down(exc):
            self.health.failed(exc.message)

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        self.health.begin()  # before any await: the next request's choice sees it
        started = time.perf_counter()
        try:
            response = await super().chat(request, model)
        except BackendError as exc:
            self._failed(exc)
            raise
        finally:
            self.health.end()
        self.health.succeeded(time.perf_counter() - started)
        response.served_by(host=self.name)
        trace.served_by(self.name)
        return response

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        self.health.begin()
        started = time.perf_counter()
        first = True
        try:
            async for chunk in super().stream_chat(request, model):
                if first:
                    first = False
                    self.health.succeeded(time.perf_counter() - started)
                    trace.served_by(self.name)
                chunk.served_by(host=self.name)
                yield chunk
        except BackendError as exc:
            self._failed(exc)
            raise
        finally:
            self.health.end()

    async def probe(self) -> str | None:
        """One cheap request after a cooldown: None when the host answers, else why not."""
        try:
            response = await self._http.get("/models", timeout=self._probe_timeout)
        except HTTPError as exc:
            return f"probe: {exc.wire_name}"
        if response.status_code >= 500:
            return f"probe: HTTP {response.status_code}"
        return None
