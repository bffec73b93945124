"""One backend for every server that speaks OpenAI's ``/v1`` API, local or remote,
through the one HTTP client (``http.make_client``); replies keep the server's bytes for
the gateway to pass on (``passthrough``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from ..errors import BackendError, ModelLoading, StreamTruncated
from ..http import (
    MAX_RESPONSE_BYTES,
    EgressPolicy,
    Transport,
    backend_error,
    json_bytes,
    make_client,
    sse_payloads,
)
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ChatStream,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    Tier,
)
from .base import Backend
from .passthrough import chunk_from_wire, reply_from_wire
from .server_quirks import USAGE_ONLY_WHEN_ASKED, adapt

# A server loading the model answers 503 "Loading model" (errors.ModelLoading): the
# request is asked again after these waits (doubling up to the last), until its own
# deadline (first_token_timeout for a stream, request_timeout otherwise) has passed.
LOADING_WAIT_FIRST = 0.25
# How long a model list this backend asked for itself is reused (discovery's default TTL).
LISTING_TTL = 5.0
LOADING_WAIT_MAX = 2.0


class _LoadWaits:
    """One request's waits for a model that is loading, within its deadline."""

    def __init__(self, budget: float, setting: str) -> None:
        self._budget, self._setting = budget, setting
        self._deadline = time.monotonic() + budget
        self._wait = LOADING_WAIT_FIRST
        self._tries = 1

    async def after(self, exc: ModelLoading, model: str) -> None:
        """Sleep before asking again, or raise once the deadline has passed."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ModelLoading(
                f"{exc.backend} was still loading model '{model}' after {self._budget:g} s "
                f"({self._tries} tries, last: {exc.message}); LOCALINFER_{self._setting} "
                "bounds the wait", backend=exc.backend, status=exc.status) from exc
        await asyncio.sleep(min(self._wait, left))
        self._wait = min(self._wait * 2, LOADING_WAIT_MAX)
        self._tries += 1


def _in_band_error(payload: bytes) -> object | None:
    """The ``error`` of an in-band error event (``{"error": ...}``), else None; the cheap
    substring test keeps ordinary chunks from being parsed twice."""
    if b'"error"' not in payload:
        return None
    data = json.loads(payload)
    return data["error"] if isinstance(data, dict) and "error" in data else None


def _asks_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _usage_on_finish(chunks: ChatStream) -> ChatStream:
    """The usage-only last chunk (asked for on the caller's behalf) folded into the
    finishing chunk before it, where a caller that did not ask still finds the counts."""
    held: ChatChunk | None = None
    async for chunk in chunks:
        if not chunk.choices and chunk.usage is not None:
            if held is not None:
                # A copy: it keeps no server bytes, which no longer say it.
                yield held.model_copy(update={"usage": chunk.usage})
                held = None
            continue
        if held is not None:
            yield held
            held = None
        if any(c.finish_reason for c in chunk.choices):
            held = chunk
            continue
        yield chunk
    if held is not None:
        yield held


class OpenAIHTTPBackend(Backend):
    """Speaks ``{api_base}/chat/completions``, ``/embeddings``, ``/models``."""

    supports_embeddings = True

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        tier: Tier,
        api_base: str,
        policy: EgressPolicy,
        known_models: Sequence[ModelInfo] = (),
        api_key: str | None = None,
        connect_timeout: float = 3.0,
        first_token_timeout: float = 120.0,
        request_timeout: float = 600.0,
        transport: Transport | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.name = name
        self.kind = kind
        self.tier = tier
        self.api_base = api_base.rstrip("/")
        self._known = list(known_models)
        self._listed: tuple[float, list[ModelInfo]] | None = None
        self._request_timeout = request_timeout
        self._first_token_timeout = first_token_timeout
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        # The read timeout bounds the wait for each chunk, so it doubles as the
        # first-token timeout on streams.
        self._http = make_client(
            policy, tier=tier, base_url=self.api_base, connect_timeout=connect_timeout,
            read_timeout=first_token_timeout, headers=headers, transport=transport,
            max_response_bytes=max_response_bytes,
        )

    def set_known_models(self, models: Sequence[ModelInfo]) -> None:
        """Discovery already listed this server's models; reuse them instead of asking."""
        self._known = list(models)
        self._listed = None

    async def models(self) -> list[ModelInfo]:
        if self._known:
            return list(self._known)
        # Not listed by discovery: asked here, at most once per LISTING_TTL (the router
        # asks on every request), and asked again after a failure.
        listed = self._listed
        if listed is not None and time.monotonic() - listed[0] < LISTING_TTL:
            return list(listed[1])
        try:
            response = await self._http.get("/models")
            await response.raise_for_status()
            data = response.json().get("data", [])
        except Exception as exc:
            self._listed = None
            raise backend_error(exc, self.name, self.api_base) from exc
        found = [ModelInfo(id=str(m["id"]), backend=self.name, tier=self.tier)
                 for m in data if isinstance(m, dict) and "id" in m]
        self._listed = (time.monotonic(), found)
        return list(found)

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        waits = _LoadWaits(self._request_timeout, "REQUEST_TIMEOUT")
        while True:
            try:
                return await self._chat_once(request, model)
            except ModelLoading as exc:
                await waits.after(exc, model)

    async def _chat_once(self, request: ChatRequest, model: str) -> ChatResponse:
        body = adapt(self.kind, request.wire(model=model, stream=False))
        try:
            response = await self._http.post("/chat/completions", content=json_bytes(body),
                                             read_timeout=self._request_timeout)
            await response.raise_for_status()
            return reply_from_wire(response.content)
        except Exception as exc:
            raise backend_error(exc, self.name, self.api_base) from exc

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        body = adapt(self.kind, request.wire(model=model, stream=True))
        fold = self.kind in USAGE_ONLY_WHEN_ASKED and not _asks_usage(body)
        if fold:
            body = {**body, "stream_options": {"include_usage": True}}
        waits = _LoadWaits(self._first_token_timeout, "FIRST_TOKEN_TIMEOUT")
        content = json_bytes(body)
        while True:
            started = False
            try:
                chunks = self._relay(content)
                async for chunk in (_usage_on_finish(chunks) if fold else chunks):
                    started = True
                    yield chunk
                return
            except ModelLoading as exc:
                if started:  # a status comes before any chunk; never replay a stream
                    raise
                await waits.after(exc, model)

    async def _relay(self, content: bytes) -> ChatStream:
        """One stream's chunks: in-band errors, a stream cut before its end marker and
        wire failures become the same errors whatever the server."""
        started = finished = False
        try:
            async with self._http.stream("POST", "/chat/completions", content=content) as response:
                await response.raise_for_status()
                try:
                    async for payload in sse_payloads(response.aiter_lines(),
                                                      source=self.name):
                        error = _in_band_error(payload)
                        if error is not None:
                            raise BackendError(f"{self.name}: {error}", backend=self.name,
                                               before_first_token=not started)
                        # Chunks keep the server's bytes for the gateway.
                        chunk = chunk_from_wire(payload)
                        started = True
                        finished = finished or any(c.finish_reason for c in chunk.choices)
                        yield chunk
                except StreamTruncated as exc:
                    if not finished:  # a finish_reason is an end marker too
                        exc.backend, exc.before_first_token = self.name, not started
                        raise
        except BackendError:
            raise
        except Exception as exc:
            err = backend_error(exc, self.name, self.api_base)
            # An error that rules out failover (a prompt too long for the context, a
            # request the server refused) keeps saying so.
            err.before_first_token = err.before_first_token and not started
            raise err from exc

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        waits = _LoadWaits(self._request_timeout, "REQUEST_TIMEOUT")
        while True:
            try:
                return await self._embed_once(request, model)
            except ModelLoading as exc:
                await waits.after(exc, model)

    async def _embed_once(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        body = request.model_dump(exclude_none=True)
        body["model"] = model
        try:
            response = await self._http.post("/embeddings", json=body)
            await response.raise_for_status()
            return EmbeddingResponse.model_validate(response.json())
        except Exception as exc:
            raise backend_error(exc, self.name, self.api_base) from exc

    async def aclose(self) -> None:
        await self._http.aclose()
