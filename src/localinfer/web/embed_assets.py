"""The embedding model folder the page's transformers.js loads: the same all-MiniLM-L6-v2
ONNX file the Python embedder runs (from the installed package, through the asset layer,
never downloaded here), its tokenizer and configs (localinfer's own package data), each
with its size and sha256 so the page verifies every byte before using it.

Laid out as transformers.js expects a local model (``{model}/config.json``,
``{model}/onnx/model.onnx``, ...) and served under ``/ui/embeddings/`` (gateway) or
written to ``embeddings/`` (``localinfer web export``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.onnx.model import DIM, MAX_TOKENS, MODEL_ASSET, MODEL_ID
from ..errors import LocalInferError
from ..settings import Settings
from .assets import _sha256_of

MINILM_DIR = Path(__file__).resolve().parent.parent / "assets" / "minilm"
# Path inside the model folder -> where it comes from: package data, or the model asset.
CONFIG_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json")
ONNX_PATH = "onnx/model.onnx"  # transformers.js's name for the fp32 (dtype 'fp32') file


@dataclass(frozen=True)
class EmbedFile:
    path: str  # inside the model folder
    source: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class EmbedModel:
    id: str
    files: dict[str, EmbedFile]
    license: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "dim": DIM, "max_tokens": MAX_TOKENS,
                "pooling": "mean", "normalize": True, "base": f"{self.id}/",
                "license": self.license,
                "bytes": sum(f.size for f in self.files.values()),
                "files": [{"path": f.path, "bytes": f.size, "sha256": f.sha256}
                          for f in self.files.values()]}


_lock = threading.Lock()
_found: dict[str, EmbedModel | None] = {}


def embed_model(settings: Settings) -> EmbedModel | None:
    """The default embedding model's folder, or None when its ONNX file is not installed
    (the page then says so; the gateway's /v1/embeddings may still answer)."""
    key = str(settings.home)
    with _lock:
        if key in _found:
            return _found[key]
    from ..assets import resolve
    from ..assets.catalog import load_catalog

    try:
        onnx = resolve(MODEL_ASSET, settings, allow_download=False)
    except LocalInferError:
        found = None
    else:
        entry = load_catalog(settings).find(MODEL_ASSET)
        files = {name: EmbedFile(name, MINILM_DIR / name, (MINILM_DIR / name).stat().st_size,
                                 _sha256_of(MINILM_DIR / name, None, settings))
                 for name in CONFIG_FILES}
        files[ONNX_PATH] = EmbedFile(ONNX_PATH, onnx, onnx.stat().st_size,
                                     _sha256_of(onnx, entry.sha256 if entry else None,
                                                settings))
        found = EmbedModel(MODEL_ID, files, entry.license if entry else None)
    with _lock:
        _found[key] = found
    return found


def embed_manifest(settings: Settings) -> dict[str, Any]:
    """``embeddings/manifest.json``: the model folder, or why there is none."""
    model = embed_model(settings)
    if model is None:
        return {"models": [], "problem": f"the embedding model ({MODEL_ASSET}) is not "
                "installed: pip install 'localinfer[rag]'"}
    return {"models": [model.as_json()]}
