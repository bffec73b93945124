"""The gateway's dialects: names clients derive from our listings (``default``, Ollama's
``name:latest``) accepted back, Ollama's digests and sizes, and ``dimensions``. What a
tier can do with a request is not decided here: the router checks it against the
chosen backend's capabilities (backends/capabilities.py) for the library and every
route alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelNotFound
from ..router import DEFAULT_MODEL_NAMES
from ..types import ChatResponse, ModelInfo
from .context import Gateway
from .errors import InvalidRequest

# -- names --------------------------------------------------------------------------


def ollama_variants(name: str) -> list[str]:
    """Ollama treats ``name`` and ``name:latest`` as one model: the spellings to try, in
    order (the router takes the rest as ``names``: resolution stays one step)."""
    if name.endswith(":latest"):
        return [name, name[: -len(":latest")]]
    if ":" not in name:
        return [name, f"{name}:latest"]
    return [name]


def find_model(models: Sequence[ModelInfo], name: str, *, ollama: bool = False) -> ModelInfo | None:
    for wanted in ollama_variants(name) if ollama else [name]:
        for m in models:
            if m.answers_to(wanted):
                return m
    return None


def ollama_names(name: str) -> list[str]:
    """The other spellings of an Ollama request's ``name``, for the router."""
    return ollama_variants(name)[1:]


async def default_model(gw: Gateway) -> ModelInfo | None:
    """What ``model: "default"`` (or none) resolves to for chat, as the router picks it."""
    candidates = await gw.client.router.candidates(None, "chat")
    if not candidates:
        return None
    first = candidates[0]
    return first.info or ModelInfo(id=first.model, backend=first.backend.name,
                                   tier=first.backend.tier)


def is_default_name(name: str) -> bool:
    return name in DEFAULT_MODEL_NAMES


def not_found(name: str, models: Sequence[ModelInfo]) -> ModelNotFound:
    return ModelNotFound(name, sorted({m.id for m in models}))


# -- replies ------------------------------------------------------------------------


def finished(reply: ChatResponse) -> ChatResponse:
    """``reply`` with every choice's ``finish_reason`` (SDKs type it as required; a backend
    that left it out stopped): a copy only when one is missing, so the server's own bytes
    are kept otherwise."""
    if all(c.finish_reason for c in reply.choices):
        return reply
    done = reply.model_copy(update={"choices": [
        c if c.finish_reason else c.model_copy(update={"finish_reason": "stop"})
        for c in reply.choices]})
    return done  # a copy keeps where it came from (backend, tier, host)


# -- digests and sizes (llm-ollama groups models by digest) --------------------------

ModelFiles = dict[tuple[str, str], tuple[str, int]]
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> tuple[str, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        except OSError:
            return None
        digest = _FILE_DIGESTS[key] = h.hexdigest()
    return digest, st.st_size


async def model_files(gw: Gateway) -> ModelFiles:
    """(backend, model id) → (sha256 of its file, size) for the models whose file this
    process knows (the embedded engine's GGUF). Hashed once per file version, off-loop."""
    out: ModelFiles = {}
    for backend in await gw.client.router.embedded_backends():
        try:
            path = getattr(backend, "model_path", None)
        except Exception:  # a misconfigured engine: no file to describe
            continue
        if not isinstance(path, Path | str) or not os.path.isfile(path):
            continue
        found = await asyncio.to_thread(_file_digest, Path(path))
        if found is None:
            continue
        for m in await backend.models():
            out[(m.backend, m.id)] = found
    return out


def name_digest(m: ModelInfo) -> str:
    return hashlib.sha256(f"{m.backend}\0{m.id}".encode()).hexdigest()


def digest_and_size(m: ModelInfo, files: ModelFiles) -> tuple[str, int]:
    return files.get((m.backend, m.id)) or (name_digest(m), 0)


def check_dimensions(dimensions: int | None, vectors: Sequence[Sequence[float]]) -> None:
    """``dimensions`` is honoured only when it is the model's own size: truncating a
    model that was not Matryoshka-trained (the built-in MiniLM was not) gives vectors
    that look right and compare wrongly."""
    if dimensions is None or not vectors or dimensions == len(vectors[0]):
        return
    raise InvalidRequest(
        f"dimensions={dimensions} is not supported: this model makes {len(vectors[0])}-d "
        "vectors and was not trained to be truncated (Matryoshka); omit dimensions or send "
        f"{len(vectors[0])}", param="dimensions")
