"""localinfer: local-first AI inference.

Find the inference servers already running on this machine, talk to them through one
OpenAI-shaped API, fall back to an embedded llama.cpp engine, and go remote only with
the user's recorded consent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the module each lives in. Imported on first use, so that
# `import localinfer.types` (or the CLI's startup) does not pay for the whole package.
_EXPORTS = {
    "AsyncClient": "client",
    "Client": "client",
    "Settings": "settings",
    "BackendError": "errors",
    "BadModelFile": "errors",
    "ConsentRequired": "errors",
    "LocalInferError": "errors",
    "ModelNotFound": "errors",
    "NoBackend": "errors",
    "SensitiveDataBlocked": "errors",
    "ChatChunk": "types",
    "ChatRequest": "types",
    "ChatResponse": "types",
    "EmbeddingResponse": "types",
    "ModelInfo": "types",
    "ServerInfo": "types",
}

__all__ = [
    "AsyncClient",
    "BackendError",
    "BadModelFile",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Client",
    "ConsentRequired",
    "EmbeddingResponse",
    "LocalInferError",
    "ModelInfo",
    "ModelNotFound",
    "NoBackend",
    "SensitiveDataBlocked",
    "ServerInfo",
    "Settings",
    "__version__",
]

if TYPE_CHECKING:
    from .client import AsyncClient, Client
    from .errors import (
        BackendError,
        BadModelFile,
        ConsentRequired,
        LocalInferError,
        ModelNotFound,
        NoBackend,
        SensitiveDataBlocked,
    )
    from .settings import Settings
    from .types import (
        ChatChunk,
        ChatRequest,
        ChatResponse,
        EmbeddingResponse,
        ModelInfo,
        ServerInfo,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'localinfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
