"""Which local model answers ``ask``: a larger pulled GGUF beats the bundled 135M model.

Local servers come first anyway (the router tries them before the embedded engine), so
this only decides what the embedded engine loads when ``ask`` builds its own client and
no model or ``embedded_model`` was set: the largest pulled GGUF that fits in half the
available memory, if it is larger than the bundled one.
"""

from __future__ import annotations

from pathlib import Path

from ..assets.bundled import MODEL_ID
from ..assets.cache import CachedModel, ModelCache
from ..assets.system import memory
from ..settings import Settings

# Files this size or smaller are no better than the bundled model (98 MB).
BUNDLED_BYTES = 100 << 20
_NOT_CHAT = ("embed", "minilm", "bge-", "e5-", "nomic")


def larger_pulled_model(settings: Settings) -> CachedModel | None:
    try:
        pulled = ModelCache.for_settings(settings).models()
        room = memory().available // 2
    except (OSError, ValueError):
        return None
    fits = [m for m in pulled
            if m.name != MODEL_ID and m.filename.lower().endswith(".gguf")
            and not any(tag in m.name.lower() for tag in _NOT_CHAT)
            and BUNDLED_BYTES < m.size <= room and m.path.is_file()]
    return max(fits, key=lambda m: m.size, default=None)


def answering_settings(settings: Settings, model: str | None) -> tuple[Settings, Path | None]:
    """Settings for ask's own client, and the pulled GGUF they load (None: unchanged)."""
    if model is not None or settings.embedded_model is not None or not settings.embedded:
        return settings, None
    chosen = larger_pulled_model(settings)
    if chosen is None:
        return settings, None
    return settings.model_copy(update={"embedded_model": chosen.path}), chosen.path
