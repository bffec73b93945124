"""The local embedder as a backend, so the router and the gateway's ``/v1/embeddings``
serve it like any other model. It embeds; it does not chat."""

from __future__ import annotations

import anyio

from ..errors import BackendError, LocalInferError
from ..settings import Settings
from ..types import (
    ChatRequest,
    ChatStream,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    Usage,
)
from .base import Backend
from .onnx.embedder import Embedder, LazyEmbedder, OnnxEmbedder, Vectors
from .onnx.model import MODEL_ALIASES, MODEL_ID


class LocalEmbeddingBackend(Backend):
    name = "embedded-embeddings"
    kind = "onnx"
    tier = "embedded"
    supports_embeddings = True

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        # Loaded on first use and kept: a model load costs far more than a request.
        self._embedder = embedder or LazyEmbedder(settings)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=MODEL_ID, backend=self.name, tier=self.tier,
                          capabilities=["embeddings"], aliases=list(MODEL_ALIASES),
                          loaded=self._loaded())]

    def _loaded(self) -> bool:
        inner = self._embedder
        return not isinstance(inner, LazyEmbedder) or inner.loaded

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        raise BackendError(f"{model} is an embedding model; it does not chat",
                           backend=self.name)
        yield  # an async generator, like every other backend's stream_chat

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        texts = request.texts
        # onnxruntime releases the GIL while it computes, so a worker thread keeps the
        # event loop free for other requests.
        vectors, tokens = await anyio.to_thread.run_sync(lambda: self._embed(texts))
        # Always floats, even when base64 was asked for: OpenAI's clients ask for base64
        # by default and accept floats in reply.
        data = [Embedding(index=i, embedding=v.tolist()) for i, v in enumerate(vectors)]
        response = EmbeddingResponse(data=data, model=MODEL_ID,
                                     usage=Usage(prompt_tokens=tokens, total_tokens=tokens))
        return response.served_by(self.name, self.tier)

    def _embed(self, texts: list[str]) -> tuple[Vectors, int]:
        try:
            vectors = self._embedder.embed(texts)
        except LocalInferError:
            raise  # already one clear line (a missing asset, a bad model file)
        except Exception as exc:
            raise BackendError(f"local embedder failed: {exc}", backend=self.name) from exc
        inner = self._embedder.get() if isinstance(self._embedder, LazyEmbedder) \
            else self._embedder
        tokens = inner.count_tokens(texts) if isinstance(inner, OnnxEmbedder) else 0
        return vectors, tokens

