"""One backend for every server that speaks OpenAI's ``/v1`` API, local or remote."""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx

from ..errors import BackendError, StreamTruncated
from ..http import EgressPolicy, backend_error, iter_sse, make_client, raise_for_status
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.tier = tier
        self.api_base = api_base.rstrip("/")
        self._known = list(known_models)
        self._request_timeout = request_timeout
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        # The read timeout bounds the wait for each chunk, so it doubles as the
        # first-token timeout on streams.
        self._http = make_client(
            policy, tier=tier, base_url=self.api_base, connect_timeout=connect_timeout,
            read_timeout=first_token_timeout, headers=headers, transport=transport,
        )

    def set_known_models(self, models: Sequence[ModelInfo]) -> None:
        """Discovery already listed this server's models; reuse them instead of asking."""
        self._known = list(models)

    async def models(self) -> list[ModelInfo]:
        if self._known:
            return list(self._known)
        try:
            response = await self._http.get("/models")
            await raise_for_status(response)
            data = response.json().get("data", [])
        except Exception as exc:
            raise backend_error(exc, self.name, self.api_base) from exc
        return [ModelInfo(id=str(m["id"]), backend=self.name, tier=self.tier)
                for m in data if isinstance(m, dict) and "id" in m]

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        try:
            response = await self._http.post(
                "/chat/completions", json=request.wire(model=model, stream=False),
                timeout=httpx.Timeout(self._request_timeout, connect=self._http.timeout.connect),
            )
            await raise_for_status(response)
            return ChatResponse.model_validate(response.json())
        except Exception as exc:
            raise backend_error(exc, self.name, self.api_base) from exc

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        body = request.wire(model=model, stream=True)
        started = finished = False
        try:
            async with self._http.stream("POST", "/chat/completions", json=body) as response:
                await raise_for_status(response)
                try:
                    async for payload in iter_sse(response, source=self.name):
                        data = json.loads(payload)
                        if isinstance(data, dict) and "error" in data:
                            raise BackendError(
                                f"{self.name}: {data['error']}", backend=self.name,
                                before_first_token=not started)
                        chunk = ChatChunk.model_validate(data)
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
            err.before_first_token = not started
            raise err from exc

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        body = request.model_dump(exclude_none=True)
        body["model"] = model
        try:
            response = await self._http.post("/embeddings", json=body)
            await raise_for_status(response)
            return EmbeddingResponse.model_validate(response.json())
        except Exception as exc:
            raise backend_error(exc, self.name, self.api_base) from exc

    async def aclose(self) -> None:
        await self._http.aclose()
