"""The browser tier's vendored files (``static/vendor/``): what the build put there, and
whether each is still present with its sha256.

``scripts/build_web.py`` copies the pinned npm files there and lists them, with sizes and
sha256s, in ``vendor/manifest.json``; every build of the package runs it (setup.py). A
file missing or changed since is one line naming it and the fix: ``/ui/manifest.json``
carries it as ``engine.problem`` (the demo page shows it), ``localinfer serve`` logs it,
``localinfer doctor`` reports it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from ..assets.cache import sha256_file

VENDOR_ROOT = Path(__file__).resolve().parent / "static" / "vendor"
VENDOR_MANIFEST = VENDOR_ROOT / "manifest.json"
_CHECKOUT_SCRIPT = VENDOR_ROOT.parents[4] / "scripts" / "build_web.py"
# The files the page imports: a manifest that lists fewer is damaged too.
REQUIRED = ("wllama/index.js", "wllama/single-thread/wllama.wasm",
            "transformers/transformers.min.js", "transformers/ort-wasm-simd-threaded.mjs",
            "transformers/ort-wasm-simd-threaded.wasm", "browser_wasi_shim/index.js")
BUILD_HINT = "run ./dev (or `npm ci --ignore-scripts && python scripts/build_web.py`)"
REINSTALL_HINT = "reinstall localinfer (`pip install --force-reinstall localinfer`)"


def fix_hint() -> str:
    """A source checkout rebuilds the files; an installed package is reinstalled."""
    return BUILD_HINT if _CHECKOUT_SCRIPT.is_file() else REINSTALL_HINT


def vendor_manifest() -> dict[str, Any] | None:
    """The build's manifest of vendored files, or None when the engine is not built."""
    try:
        data = json.loads(VENDOR_MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def engine_files() -> list[dict[str, Any]]:
    """Every vendored file: path (under vendor/), bytes, sha256, package, licence."""
    manifest = vendor_manifest() or {}
    files: list[dict[str, Any]] = []
    for package in manifest.get("packages", []):
        for f in package.get("files", []):
            files.append({**f, "package": package["name"], "version": package["version"],
                          "license": package["license"]})
    return files


_lock = threading.Lock()
_verified: set[tuple[str, int, int, str]] = set()


def _matches(path: Path, size: int, sha256: str) -> bool:
    """Hashed once per process per (size, mtime): /ui/manifest.json asks on every load."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, sha256)
    with _lock:
        if key in _verified:
            return True
    if st.st_size != size or sha256_file(path) != sha256:
        return False
    with _lock:
        _verified.add(key)
    return True


def vendor_problem() -> str | None:
    """None when every vendored file is present with its sha256; else one line naming
    the first that is not, and the fix."""
    fix = fix_hint()
    manifest = vendor_manifest()
    if manifest is None:
        return f"the browser tier's files are not built ({VENDOR_MANIFEST} is missing): {fix}"
    try:
        files = {str(f["path"]): (int(f["bytes"]), str(f["sha256"])) for f in engine_files()}
    except (KeyError, TypeError, ValueError):
        return f"the browser tier's manifest {VENDOR_MANIFEST} is damaged: {fix}"
    for required in REQUIRED:
        if required not in files:
            return f"the browser tier's manifest does not list vendor/{required}: {fix}"
    for relative, (size, sha256) in files.items():
        path = (VENDOR_ROOT / relative).resolve()
        if VENDOR_ROOT not in path.parents:
            return f"the browser tier's manifest names a path outside vendor/: {fix}"
        if not path.is_file():
            return f"the browser tier's file vendor/{relative} is missing: {fix}"
        if not _matches(path, size, sha256):
            return (f"the browser tier's file vendor/{relative} is damaged (not the sha256 "
                    f"it was built with): {fix}")
    return None
