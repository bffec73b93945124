"""What the browser tier can load: the engine files (pinned wllama, from the vendor
manifest) and the model files (GGUF chat models this machine already has), with the
sizes and sha256s the page needs to disclose a download and verify it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..assets.bundled import FILENAME as BUNDLED_FILENAME
from ..assets.bundled import MODEL_ID as BUNDLED_ID
from ..assets.bundled import bundled_model_path
from ..assets.cache import ModelCache, sha256_file
from ..assets.catalog import load_catalog
from ..errors import LocalInferError
from ..settings import Settings

# Re-exported: the vendored files moved to .vendor, their importers still look here.
from .vendor import BUILD_HINT as BUILD_HINT
from .vendor import VENDOR_MANIFEST as VENDOR_MANIFEST
from .vendor import VENDOR_ROOT as VENDOR_ROOT
from .vendor import engine_files as engine_files
from .vendor import vendor_manifest as vendor_manifest
from .vendor import vendor_problem

STATIC_ROOT = Path(__file__).resolve().parent / "static"
# The engine files a page fetches with one thread (no cross-origin isolation needed).
ENGINE_SINGLE_THREAD = ("wllama/index.js", "wllama/single-thread/wllama.wasm")


@dataclass(frozen=True)
class WebModel:
    name: str
    path: Path
    size: int
    sha256: str
    license: str | None
    ram: int | None
    context_length: int | None
    filename: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": f"models/{self.name}", "bytes": self.size,
                "sha256": self.sha256, "license": self.license, "ram": self.ram,
                "context_length": self.context_length, "format": "gguf",
                "filename": self.filename, "purpose": "chat"}


_hash_lock = threading.Lock()
_hashes: dict[tuple[str, int, int], str] = {}


def _sha256_of(path: Path, expected: str | None, settings: Settings) -> str:
    """The file's sha256: from the asset cache's stamps when it was verified before
    (no I/O), else hashed once per process (size+mtime keyed)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hashes:
            return _hashes[key]
        if expected and ModelCache.for_settings(settings).verified(path, expected):
            digest = expected
        else:
            digest = sha256_file(path)
        _hashes[key] = digest
        return digest


def web_models(settings: Settings) -> dict[str, WebModel]:
    """GGUF chat models the page may load: the bundled one and every GGUF chat model in
    the asset cache (`localinfer pull`). Keyed by name."""
    catalog = load_catalog(settings)
    found: dict[str, WebModel] = {}
    try:
        path = bundled_model_path()
    except LocalInferError:
        path = None
    if path is not None:
        entry = catalog.find(BUNDLED_ID)
        found[BUNDLED_ID] = WebModel(
            name=BUNDLED_ID, path=path, size=path.stat().st_size,
            sha256=_sha256_of(path, entry.sha256 if entry else None, settings),
            license=entry.license if entry else None, ram=entry.ram if entry else None,
            context_length=entry.context_length if entry else None,
            filename=BUNDLED_FILENAME)
    for cached in ModelCache.for_settings(settings).models():
        entry = catalog.find(cached.name)
        is_chat_gguf = cached.filename.endswith(".gguf") and (
            entry is None or entry.purpose in (None, "chat"))
        if not is_chat_gguf or cached.name in found or not cached.path.is_file():
            continue
        found[cached.name] = WebModel(
            name=cached.name, path=cached.path, size=cached.size, sha256=cached.sha256,
            license=entry.license if entry else None, ram=entry.ram if entry else None,
            context_length=entry.context_length if entry else None,
            filename=cached.filename)
    return found


def ui_manifest(settings: Settings, *, models: dict[str, WebModel] | None = None
                ) -> dict[str, Any]:
    """``/ui/manifest.json``: the engine (files, sizes, hashes, licences) and the models."""
    files = engine_files()
    by_path = {f["path"]: f for f in files}
    single = [by_path[p] for p in ENGINE_SINGLE_THREAD if p in by_path]
    problem = vendor_problem()  # missing or damaged files: one line the page shows
    engine: dict[str, Any] = {
        "name": "wllama",
        "version": next((f["version"] for f in files if f["package"] == "@wllama/wllama"),
                        None),
        "built": problem is None,
        "bytes": sum(int(f["bytes"]) for f in single),
        "files": files,
    }
    if problem is not None:
        engine["problem"] = problem
    chosen = web_models(settings) if models is None else models
    return {"service": "localinfer", "version": __version__, "engine": engine,
            "models": [m.as_json() for m in chosen.values()]}
