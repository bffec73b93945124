"""``localinfer web export DIR``: the browser tier as static files.

The same app the gateway serves under ``/ui/`` (SDK, engine worker, pinned engine files,
demo app) plus ``manifest.json`` and, unless left out, the model files under
``models/``, so any static host (``python -m http.server``) can serve it with no
localinfer process behind it. The page then finds no local server (unless one allows
its origin) and runs the model in the browser.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.onnx.model import MODEL_ID
from ..errors import UsageError
from ..settings import Settings
from .assets import BUILD_HINT, STATIC_ROOT, ui_manifest, vendor_manifest, web_models
from .embed_assets import embed_manifest, embed_model
from .sandbox_assets import export_runtimes


@dataclass(frozen=True)
class ExportReport:
    directory: Path
    files: int
    bytes: int
    models: list[str]
    sandbox: list[str] = field(default_factory=list)  # runtimes copied into sandbox/
    sandbox_missing: list[str] = field(default_factory=list)  # why a runtime is not


def export_site(dest: Path, settings: Settings, *, models: list[str] | None = None,
                include_models: bool = True, force: bool = False) -> ExportReport:
    """Write the app to ``dest``. ``models``: names to include (default: all the
    gateway would serve); ``include_models=False``: engine + SDK + manifest only."""
    if vendor_manifest() is None:
        raise UsageError(f"the in-browser engine is not built: {BUILD_HINT}")
    if dest.exists() and any(dest.iterdir()) and not force:
        raise UsageError(f"{dest} is not empty (use --force to write into it)")
    available = web_models(settings)
    if models:
        unknown = [m for m in models if m not in available]
        if unknown:
            raise UsageError(f"no model {', '.join(unknown)} here; available: "
                             f"{', '.join(sorted(available)) or 'none'}")
        chosen = {name: available[name] for name in models}
    else:
        chosen = available if include_models else {}
    dest.mkdir(parents=True, exist_ok=True)
    files = 0
    total = 0
    for src in sorted(STATIC_ROOT.rglob("*")):
        if not src.is_file() or any(p.startswith(".") for p in src.relative_to(STATIC_ROOT).parts):
            continue
        target = dest / src.relative_to(STATIC_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        files += 1
        total += src.stat().st_size
    for model in chosen.values():
        target = dest / "models" / model.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.path, target)
        files += 1
        total += model.size
    # The embedding model folder (transformers.js), with its own manifest of sha256s.
    embedder = embed_model(settings) if include_models else None
    for part in (embedder.files.values() if embedder else ()):
        target = dest / "embeddings" / MODEL_ID / part.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(part.source, target)
        files += 1
        total += part.size
    embed_text = json.dumps(embed_manifest(settings) if embedder else {"models": []}) + "\n"
    (dest / "embeddings").mkdir(exist_ok=True)
    (dest / "embeddings" / "manifest.json").write_text(embed_text, encoding="utf-8")
    files += 1
    total += len(embed_text)
    # The sandbox's runtimes, when the `sandbox` extra is installed (else said, not fatal).
    runtimes = export_runtimes(dest)
    files += runtimes.files
    total += runtimes.bytes
    manifest = ui_manifest(settings, models=chosen)
    text = json.dumps(manifest, indent=1) + "\n"
    (dest / "manifest.json").write_text(text, encoding="utf-8")
    return ExportReport(directory=dest, files=files + 1, bytes=total + len(text),
                        models=list(chosen), sandbox=runtimes.copied,
                        sandbox_missing=runtimes.missing)
