"""The browser tier's files and the Python that serves and exports them.

``static/`` holds our own JavaScript (the ``localinfer.js`` SDK, its engine worker, the
demo app); ``static/vendor/`` holds the pinned third-party engine (wllama), copied there
from ``node_modules`` by ``scripts/build_web.py`` with a manifest of sha256s and licences
(generated, never committed). The gateway serves ``static/`` under ``/ui/``;
``localinfer web export DIR`` writes the same files as a static site.
"""

from __future__ import annotations

from .assets import (
    STATIC_ROOT,
    VENDOR_ROOT,
    WebModel,
    engine_files,
    ui_manifest,
    vendor_manifest,
    web_models,
)

__all__ = [
    "STATIC_ROOT",
    "VENDOR_ROOT",
    "WebModel",
    "engine_files",
    "ui_manifest",
    "vendor_manifest",
    "web_models",
]
