"""``localinfer doctor``: is this install whole? One check per part, each one line.

The engine and its build (CPU or GPU), the default model present and matching its
catalog sha256, the browser tier's files, the local servers discovery finds, and the
home's state files. Each check reuses the part's own reader, so a file doctor calls
healthy is one the program can use, and its complaint is the one the program would
make (with the fix).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .assets.bundled import MODEL_ID, bundled_model_path
from .assets.cache import ModelCache
from .assets.catalog import load_catalog
from .assets.progress import format_bytes
from .consent import ConsentStore
from .errors import LocalInferError
from .ledger import EgressLedger
from .remote import ProviderStore
from .settings import Settings, SettingsError, config_path, default_home
from .tokens import TokenStore
from .web.vendor import engine_files, vendor_problem

ENGINE_DISTRIBUTION = "xllamacpp"
# ggml's device types that are GPUs (ACCEL devices such as BLAS run on the CPU).
GPU_TYPES = frozenset({"GGML_BACKEND_DEVICE_TYPE_GPU", "GGML_BACKEND_DEVICE_TYPE_IGPU"})


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


class Failed(Exception):
    """A check that does not hold: its one line."""


# -- the engine ------------------------------------------------------------------------

def _cpu_features(system_info: str) -> list[str]:
    """``CPU : SSE3 = 1 | AVX = 0 | …`` → the features that are on."""
    _, _, flags = system_info.partition(":")
    pairs = (part.split("=") for part in flags.split("|") if "=" in part)
    return [name.strip() for name, value in pairs if value.strip() == "1"]


def _device(device: dict[str, Any]) -> str:
    memory = device.get("memory_total")
    size = f", {format_bytes(memory)}" if isinstance(memory, int) and memory > 0 else ""
    return f"{device.get('name', '?')} ({device.get('description', '?')}{size})"


def _type_name(device: dict[str, Any]) -> str:
    kind = device.get("type")
    return str(getattr(kind, "name", kind))  # an IntEnum whose str() is its number


def engine(settings: Settings) -> str:
    if not settings.embedded:
        return "embedded engine off (LOCALINFER_EMBEDDED / config.toml `embedded`)"
    try:
        version = importlib.metadata.version(ENGINE_DISTRIBUTION)
        import xllamacpp
    except (importlib.metadata.PackageNotFoundError, ImportError) as exc:
        raise Failed(f"llama.cpp's engine ({ENGINE_DISTRIBUTION}) cannot be loaded ({exc}); "
                     f"`pip install {ENGINE_DISTRIBUTION}`") from None
    try:
        features = _cpu_features(str(xllamacpp.get_system_info()))
        devices = list(xllamacpp.get_device_info())
    except Exception as exc:  # the native library itself failed: that is the finding
        raise Failed(f"{ENGINE_DISTRIBUTION} {version} is installed but does not start "
                     f"({type(exc).__name__}: {exc})") from None
    gpus = [d for d in devices if _type_name(d) in GPU_TYPES]
    build = (f"GPU build: {', '.join(_device(d) for d in gpus)}" if gpus
             else "CPU only (no GPU device; accelerator wheels: docs/dependencies.md)")
    return f"{ENGINE_DISTRIBUTION} {version}, {build}; CPU features: {' '.join(features)}"


# -- the model -------------------------------------------------------------------------

def model(settings: Settings) -> str:
    if not settings.embedded:
        return "not needed (embedded engine off)"
    if settings.embedded_model is not None:
        path = Path(settings.embedded_model).expanduser()
        if not path.is_file():
            raise Failed(f"the configured model {path} is not a file; fix LOCALINFER_"
                         "EMBEDDED_MODEL / `embedded_model`, or remove it to use the default")
        return (f"{path} ({format_bytes(path.stat().st_size)}; your own file: no catalog "
                "sha256 to verify against)")
    try:
        path = bundled_model_path(settings.home)
    except LocalInferError as exc:
        raise Failed(exc.message) from None
    entry = load_catalog(settings).find(MODEL_ID)
    if entry is None or entry.sha256 is None:
        return f"{MODEL_ID}: {path} (no catalog sha256 to verify against)"
    if not ModelCache.for_settings(settings).verified(path, entry.sha256):
        raise Failed(f"{MODEL_ID}: {path} does not match its catalog sha256 (damaged or "
                     f"replaced); remove it and run `localinfer pull {MODEL_ID}`")
    return f"{MODEL_ID}: {path} ({format_bytes(path.stat().st_size)}, sha256 verified)"


# -- the browser tier ------------------------------------------------------------------

def browser(settings: Settings) -> str:
    problem = vendor_problem()
    if problem is not None:
        raise Failed(problem)
    files = engine_files()
    packages = dict.fromkeys(f"{f['package']} {f['version']}" for f in files)
    return f"{len(files)} files, sha256 verified ({', '.join(packages)})"


# -- local servers ---------------------------------------------------------------------

def servers(settings: Settings) -> str:
    from .discovery import discover
    from .syncbridge import run_sync

    ledger = EgressLedger.from_settings(settings)
    try:
        policy = ledger.policy(settings)
        found = run_sync(lambda: discover(settings, policy))
    finally:
        ledger.close()
    if not found:
        return "none found (the embedded engine answers, if it is on)"
    where = ", ".join(f"{s.kind} on {s.base_url.split('://', 1)[-1]}" for s in found)
    return f"{len(found)} found: {where}"


# -- the home's state files ------------------------------------------------------------

def _state(path: Path, read: Callable[[], int], noun: str) -> str:
    try:
        count = read()
    except LocalInferError as exc:
        raise Failed(exc.message) from None
    return f"{path}: {count} {noun}" if path.exists() else f"{path}: absent ({noun}: none)"




def consent(settings: Settings) -> str:
    store = ConsentStore(settings.home)
    return _state(store.path, lambda: len(store.list()), "grants")


def remotes(settings: Settings) -> str:
    store = ProviderStore(settings.home, settings.remotes)
    return _state(store.path, lambda: len(store.all()), "providers")


def tokens(settings: Settings) -> str:
    store = TokenStore(settings.home)
    return _state(store.file.path, lambda: len(store.all()), "client tokens")


def ledger(settings: Settings) -> str:
    book = EgressLedger.from_settings(settings)
    try:
        problem = book.problem()
    finally:
        book.close()
    if problem is not None:
        raise Failed(problem)
    return f"{book.path}: writable" if book.path.exists() else f"{book.path}: absent (new)"


def models_manifest(settings: Settings) -> str:
    """The cache's own reader says whether the manifest can be used (``problem``: its
    line names the file and `localinfer cache repair`); then each named file is there."""
    cache = ModelCache.for_settings(settings)
    path = cache.root / "manifest.json"
    if not path.exists():
        return f"{path}: absent (nothing pulled)"
    problem = cache.problem()
    if problem is not None:
        raise Failed(problem.message)
    entries = cache.models()
    missing = [m.name for m in entries if not m.path.is_file()]
    if missing:
        # repair drops entries whose file is gone (and names the files still there).
        raise Failed(f"{path}: {', '.join(missing)} listed but their files are gone; "
                     "run `localinfer cache repair` to drop them, then pull again")
    return f"{path}: {len(entries)} models, files present"


CHECKS: tuple[tuple[str, Callable[[Settings], str]], ...] = (
    ("engine", engine),
    ("model", model),
    ("browser files", browser),
    ("servers", servers),
    ("consent.json", consent),
    ("remotes.json", remotes),
    ("egress ledger", ledger),
    ("models manifest", models_manifest),
    ("tokens.json", tokens),
)


def run(load_settings: Callable[[], Settings]) -> list[Check]:
    """Every check, in order; one failing never stops the others. Settings (environment
    and config.toml) come first: when they cannot be read, the rest run on the defaults
    in the default home."""
    try:
        settings = load_settings()
        path = config_path(settings.home)
        results = [Check("settings", True, f"{path}: read" if path.exists()
                         else f"{path}: absent (defaults)")]
    except SettingsError as exc:
        settings = Settings.model_construct(home=default_home())
        results = [Check("settings", False, exc.message)]
    for name, check in CHECKS:
        try:
            results.append(Check(name, True, check(settings)))
        except Failed as exc:
            results.append(Check(name, False, str(exc)))
        except LocalInferError as exc:  # e.g. a bad [models.X] table while checking
            results.append(Check(name, False, exc.message))
    return results
