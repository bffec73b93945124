"""The content-addressed model cache under ``$LOCALINFER_HOME/models``.

Layout::

    blobs/sha256-<hex>      verified files, named by their content (read-only)
    manifest.json           name -> blob, size, filename, where it came from (a damaged
                            one is one StateFileError, never overwritten; `repair()`)
    verified.json           size+mtime stamps of files already hashed (skip re-hashing)
    partial/<key>.part      an unfinished download, plus <key>.json (ETag, size, URL, name):
                            listed by `partials()`, removed by `remove_partial()`/`clean()`
    locks/<key>.lock        file locks: one writer per file, one manifest writer

A file reaches ``blobs/`` only by an atomic rename after its sha256 matched, so a
reader never sees a half-written or unverified model there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock, Timeout

from ..errors import ModelNotFound
from ..settings import Settings
from ..statefile import JsonStateFile, StateFileError, want_dict
from .progress import Meter, ProgressCallback

CHUNK = 1 << 20
MANIFEST_FIX = "run `localinfer cache repair` to rebuild it from the cached files"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# One manifest entry as written: "name": {flat fields}. Used to salvage what a damaged
# file still holds (a flipped byte usually spoils one entry or one brace, not all).
_ENTRY = re.compile(r'"((?:[^"\\\n]|\\.){1,300})"\s*:\s*(\{[^{}]*\})')

log = logging.getLogger("localinfer.assets")


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


@dataclass(frozen=True)
class PartialDownload:
    """An unfinished download in ``partial/``: resumable (``.part`` + sidecar) or not (a
    wheel being unpacked)."""

    key: str
    name: str | None
    url: str | None
    size: int
    total: int | None
    paths: tuple[Path, ...]

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "url": self.url, "size": self.size,
                "total": self.total, "paths": [str(p) for p in self.paths]}


@dataclass
class RepairReport:
    kept: list[str] = field(default_factory=list)  # entries salvaged with their names
    named: list[str] = field(default_factory=list)  # blobs given a name from catalog or hash
    dropped: list[str] = field(default_factory=list)  # entries whose file is gone or bad
    bad_blobs: list[Path] = field(default_factory=list)  # files that do not hash to their name
    set_aside: Path | None = None  # where the damaged manifest was moved


def _entry_problem(name: str, raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return f"model {name!r} is not an object"
    sha = raw.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        return f"model {name!r} has no valid sha256"
    size = raw.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return f"model {name!r} has a bad size {size!r}"
    return None


def _parse_manifest(raw: Any) -> dict[str, dict[str, Any]]:
    models = want_dict(want_dict(raw, "the manifest").get("models", {}), "models")
    for name, entry in models.items():
        problem = _entry_problem(name, entry)
        if problem is not None:
            raise ValueError(problem)
    return models


def _salvage(text: str) -> dict[str, dict[str, Any]]:
    """The entries of a damaged manifest that still read as whole, valid entries."""
    found: dict[str, dict[str, Any]] = {}
    for match in _ENTRY.finditer(text):
        try:
            name = json.loads(f'"{match.group(1)}"')
            raw = json.loads(match.group(2))
        except ValueError:
            continue
        if name != "models" and _entry_problem(name, raw) is None:
            found[name] = raw
    return found


_warned: set[str] = set()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _bytes_in(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
        self._file: JsonStateFile[dict[str, dict[str, Any]]] = JsonStateFile(
            self._manifest, _parse_manifest, dict, fix=MANIFEST_FIX)

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

    def problem(self) -> StateFileError | None:
        """Why the manifest cannot be used (damaged), or None."""
        try:
            self._file.read()
        except StateFileError as exc:
            return exc
        return None

    def check_manifest(self) -> None:
        """Raise StateFileError when the manifest is damaged: before a pull that would
        write it, so a damaged file is never overwritten (and nothing is downloaded)."""
        self._file.read()

    def _models(self) -> dict[str, dict[str, Any]]:
        """For readers that only look (which model is bundled, what the web tier lists): a
        damaged manifest reads as empty, said once in the log; writers use ``_file``."""
        try:
            return self._file.read()
        except StateFileError as exc:
            if exc.message not in _warned:
                _warned.add(exc.message)
                log.warning("%s", exc.message)
            return {}

    def _entry(self, name: str, raw: dict[str, Any]) -> CachedModel:
        sha = str(raw["sha256"])
        return CachedModel(name=name, sha256=sha, size=int(raw.get("size", 0)),
                           filename=str(raw.get("filename", "")),
                           source=str(raw.get("source", "")),
                           added=float(raw.get("added", 0.0)), path=self.blob_path(sha))

    def record(self, name: str, sha256: str, size: int, filename: str, source: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._meta_lock():
            models = dict(self._file.read())  # StateFileError: never overwrite a damaged file
            models[name] = {"sha256": sha256, "size": size, "filename": filename,
                            "source": source, "added": time.time()}
            self._file.write({"models": models})

    def models(self) -> list[CachedModel]:
        return [self._entry(n, raw) for n, raw in sorted(self._models().items())]

    def get(self, name: str) -> CachedModel | None:
        raw = self._models().get(name)
        return self._entry(name, raw) if raw else None

    def remove(self, name: str) -> list[Path]:
        """Forget ``name``; delete its blob when no other name points at it."""
        removed: list[Path] = []
        with self._meta_lock():
            models = dict(self._file.read())
            if name not in models:
                raise ModelNotFound(name, sorted(models))
            sha = models.pop(name)["sha256"]
            self._file.write({"models": models})
            if not any(m.get("sha256") == sha for m in models.values()):
                blob = self.blob_path(sha)
                if blob.exists():
                    blob.unlink()
                    removed.append(blob)
                stamps = _read_json(self._stamps)
                stamps.pop(str(blob.resolve()), None)
                _write_json(self._stamps, stamps)
        return removed

    def repair(self, known: Mapping[str, str] | None = None) -> RepairReport:
        """Rebuild the manifest from the blobs: a damaged file is moved aside (never
        deleted) and whatever whole entries it still holds keep their names; every
        verified blob left without a name gets its catalog name (``known``: sha256 ->
        name) or ``sha256-<12 hex>``; entries whose file is gone or bad are dropped."""
        report = RepairReport()
        good: dict[str, int] = {}
        for blob in sorted(self.blobs.glob("sha256-*")) if self.blobs.exists() else []:
            sha = blob.name.removeprefix("sha256-")
            if _SHA256.fullmatch(sha) and self.verified(blob, sha):
                good[sha] = blob.stat().st_size
            else:
                report.bad_blobs.append(blob)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._meta_lock():
            damaged = self.problem()
            if damaged is None:
                entries = dict(self._file.read())
            else:
                entries = _salvage(self._manifest.read_bytes().decode("utf-8", "replace"))
                aside = self._manifest.with_name(
                    f"manifest.json.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(self._manifest, aside)
                report.set_aside = aside
            models: dict[str, dict[str, Any]] = {}
            for name, raw in sorted(entries.items()):
                if raw["sha256"] in good:
                    models[name] = raw
                    report.kept.append(name)
                else:
                    report.dropped.append(name)
            named = {raw["sha256"] for raw in models.values()}
            for sha, size in sorted(good.items()):
                if sha in named:
                    continue
                name = (known or {}).get(sha) or f"sha256-{sha[:12]}"
                if name in models:
                    name = f"{name}-{sha[:12]}"
                models[name] = {"sha256": sha, "size": size, "filename": name,
                                "source": "cache repair", "added": time.time()}
                report.named.append(name)
            self._file.write({"models": models})
        return report

    # -- partial downloads -------------------------------------------------------------

    def partials(self) -> list[PartialDownload]:
        """Unfinished downloads, with the name and URL their sidecar recorded."""
        if not self.partial.is_dir():
            return []
        groups: dict[str, list[Path]] = {}
        for path in self.partial.iterdir():
            key = path.name if path.is_dir() else path.name.split(".", 1)[0]
            groups.setdefault(key, []).append(path)
        found: list[PartialDownload] = []
        for key, paths in sorted(groups.items()):
            side = _read_json(self.partial / f"{key}.json")
            size = sum(_bytes_in(p) for p in paths if p.suffix != ".json")
            total = side.get("total")
            found.append(PartialDownload(
                key, str(side["name"]) if side.get("name") else None,
                str(side["url"]) if side.get("url") else None, size,
                total if isinstance(total, int) and not isinstance(total, bool) else None,
                tuple(sorted(paths))))
        return found

    def remove_partial(self, partial: PartialDownload) -> bool:
        """Delete one unfinished download; False when a running pull holds it."""
        held = self._held([partial.key] if partial.key.startswith("src-") else
                          [p.stem for p in self.locks.glob("src-*.lock")])
        if held is None:
            return False
        try:
            for path in partial.paths:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        finally:
            for lock in held:
                lock.release()
        return True

    def _held(self, keys: list[str]) -> list[BaseFileLock] | None:
        """Take each lock without waiting: all of them, or None (a pull is running)."""
        taken: list[BaseFileLock] = []
        for key in keys:
            lock = self.lock(key)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                for other in taken:
                    other.release()
                return None
            taken.append(lock)
        return taken

    def clean(self) -> tuple[list[PartialDownload], list[PartialDownload]]:
        """Remove every unfinished download no running pull holds, and temp files a
        killed writer left; (removed, kept because in use)."""
        removed: list[PartialDownload] = []
        busy: list[PartialDownload] = []
        for partial in self.partials():
            (removed if self.remove_partial(partial) else busy).append(partial)
        if self.root.is_dir():
            with self._meta_lock():  # writers make their temp files under this lock
                for tmp in self.root.glob("*.tmp"):
                    tmp.unlink(missing_ok=True)
                for tmp in self.root.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
        return removed, busy

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
