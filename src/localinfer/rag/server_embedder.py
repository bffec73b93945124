"""Embeddings from a local server's model (e.g. Ollama's nomic-embed-text), chosen in
place of the built-in embedder. Requests go through the router with ``sensitive=True``:
a local tier answers or the call fails; documents are never embedded remotely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..backends.onnx.embedder import Vectors

if TYPE_CHECKING:
    from ..client import Client
    from ..settings import Settings

PREFIX = "server:"


class ServerEmbedder:
    def __init__(self, settings: Settings, model: str) -> None:
        self.model = model
        self.id = PREFIX + model  # recorded in the index, so later runs use it again
        self._settings = settings
        self._client: Client | None = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        if self._client is None:
            from ..client import Client

            self._client = Client(self._settings)
        reply = self._client.embed(list(texts), model=self.model, sensitive=True)
        vectors = np.asarray(reply.vectors, dtype=np.float32)
        # Servers do not all normalise; the index compares unit vectors.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.clip(norms, 1e-12, None), dtype=np.float32)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
