"""The content-addressed model cache under ``$LOCALINFER_HOME/models``.

Layout::

    blobs/sha256-<hex>      verified files, named by their content (read-only)
    manifest.json           name -> blob, size, filename, where it came from
    verified.json           size+mtime stamps of files already hashed (skip re-hashing)
    partial/<key>.part      an unfinished download, plus <key>.json (ETag, size, URL)
    locks/<key>.lock        file locks: one writer per file, one manifest writer

A file reaches ``blobs/`` only by an atomic rename after its sha256 matched, so a
reader never sees a half-written or unverified model there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock

from ..errors import ModelNotFound
from ..settings import Settings
from .progress import Meter, ProgressCallback

CHUNK = 1 << 20


def sha256_file(path: Path, progress: ProgressCallback | None = None,
                detail: str | None = None) -> str:
    digest = hashlib.sha256()
    meter = Meter("verify", path.stat().st_size, progress, detail=detail)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            meter.advance(len(chunk))
    meter.finish()
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedModel:
    name: str
    sha256: str
    size: int
    filename: str
    source: str
    added: float
    path: Path

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size,
                "filename": self.filename, "source": self.source, "added": self.added,
                "path": str(self.path)}


@dataclass(frozen=True)
class VerifyResult:
    sha256: str
    path: Path
    names: list[str]
    ok: bool
    problem: str | None = None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ModelCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.partial = root / "partial"
        self.locks = root / "locks"
        self._manifest = root / "manifest.json"
        self._stamps = root / "verified.json"

    @classmethod
    def for_settings(cls, settings: Settings) -> ModelCache:
        return cls(settings.home / "models")

    def ensure(self) -> None:
        for d in (self.blobs, self.partial, self.locks):
            d.mkdir(parents=True, exist_ok=True)

    # -- locks -------------------------------------------------------------------------

    def lock(self, key: str) -> BaseFileLock:
        # filelock: flock on POSIX, msvcrt on Windows; released when the process dies, so a
        # crashed pull never leaves the cache locked. Not thread-local: a pull acquires it
        # in a worker thread and releases it on the event loop's.
        return FileLock(self.locks / f"{key}.lock", thread_local=False)

    @contextlib.contextmanager
    def _meta_lock(self) -> Iterator[None]:
        with self.lock("manifest"):
            yield

    # -- blobs -------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / f"sha256-{sha256}"

    def verified(self, path: Path, sha256: str, *, progress: ProgressCallback | None = None,
                 detail: str | None = None) -> bool:
        """True if ``path`` hashes to ``sha256``. A file hashed before and unchanged since
        (same size and mtime) is trusted from its stamp, so the 2nd load costs no I/O."""
        try:
            st = path.stat()
        except OSError:
            return False
        key = str(path.resolve())
        stamp = _read_json(self._stamps).get(key)
        if (isinstance(stamp, dict) and stamp.get("sha256") == sha256
                and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns):
            return True
        actual = sha256_file(path, progress, detail)
        if actual != sha256:
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        with self._meta_lock():
            stamps = _read_json(self._stamps)
            stamps[key] = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            _write_json(self._stamps, stamps)
        return True

    def commit(self, tmp: Path, sha256: str) -> Path:
        """Move a verified temp file into place atomically (same filesystem)."""
        final = self.blob_path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and self.verified(final, sha256):
            tmp.unlink(missing_ok=True)
            return final
        # Absent, or damaged since it was stored: the fresh verified copy replaces it.
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        st = final.stat()
        with self._meta_lock():
            stamps = _read_json(self._stamps)
            stamps[str(final.resolve())] = {"sha256": sha256, "size": st.st_size,
                                            "mtime_ns": st.st_mtime_ns}
            _write_json(self._stamps, stamps)
        return final

    # -- manifest ----------------------------------------------------------------------

    def _models(self) -> dict[str, dict[str, Any]]:
        models = _read_json(self._manifest).get("models", {})
        return models if isinstance(models, dict) else {}

    def _entry(self, name: str, raw: dict[str, Any]) -> CachedModel:
        sha = str(raw["sha256"])
        return CachedModel(name=name, sha256=sha, size=int(raw.get("size", 0)),
                           filename=str(raw.get("filename", "")),
                           source=str(raw.get("source", "")),
                           added=float(raw.get("added", 0.0)), path=self.blob_path(sha))

    def record(self, name: str, sha256: str, size: int, filename: str, source: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._meta_lock():
            data = _read_json(self._manifest)
            models = data.setdefault("models", {})
            models[name] = {"sha256": sha256, "size": size, "filename": filename,
                            "source": source, "added": time.time()}
            _write_json(self._manifest, data)

    def models(self) -> list[CachedModel]:
        return [self._entry(n, raw) for n, raw in sorted(self._models().items())]

    def get(self, name: str) -> CachedModel | None:
        raw = self._models().get(name)
        return self._entry(name, raw) if raw else None

    def remove(self, name: str) -> list[Path]:
        """Forget ``name``; delete its blob when no other name points at it."""
        removed: list[Path] = []
        with self._meta_lock():
            data = _read_json(self._manifest)
            models = data.get("models", {})
            if name not in models:
                raise ModelNotFound(name, sorted(models))
            sha = models.pop(name)["sha256"]
            _write_json(self._manifest, data)
            if not any(m.get("sha256") == sha for m in models.values()):
                blob = self.blob_path(sha)
                if blob.exists():
                    blob.unlink()
                    removed.append(blob)
                stamps = _read_json(self._stamps)
                stamps.pop(str(blob.resolve()), None)
                _write_json(self._stamps, stamps)
        return removed

    def verify_all(self, progress: ProgressCallback | None = None) -> list[VerifyResult]:
        """Re-hash every blob (ignoring stamps) and check every manifest entry has one."""
        names: dict[str, list[str]] = {}
        for n, raw in self._models().items():
            names.setdefault(str(raw.get("sha256")), []).append(n)
        results: list[VerifyResult] = []
        seen: set[str] = set()
        blobs = sorted(self.blobs.glob("sha256-*")) if self.blobs.exists() else []
        for blob in blobs:
            expected = blob.name.removeprefix("sha256-")
            seen.add(expected)
            actual = sha256_file(blob, progress, detail=blob.name)
            ok = actual == expected
            results.append(VerifyResult(expected, blob, names.get(expected, []), ok,
                                        None if ok else f"content hashes to {actual}"))
        for sha, ns in names.items():
            if sha not in seen:
                results.append(VerifyResult(sha, self.blob_path(sha), ns, False, "file missing"))
        return results
