"""Model assets: the catalog, the verified cache, pulls, and first-load disclosure.

The rest of localinfer calls three things::

    resolve(name, settings, progress=cb)  -> Path   # a verified local file
    disclose(name_or_url, settings)       -> Disclosure   # cost, before any byte moves
    pull(name_or_url, settings, ...)      -> PullResult   # what `localinfer pull` does

Each has an ``a``-prefixed coroutine twin; the sync forms run it through
``syncbridge.run_sync`` (the one sync-over-async mechanism).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DiskFull, DownloadError, NotCached
from ..http import EgressPolicy
from ..settings import Settings
from ..syncbridge import run_sync
from .cache import CachedModel, ModelCache, VerifyResult
from .catalog import Catalog, CatalogEntry, load_catalog
from .disclosure import Disclosure, adisclose
from .progress import Progress, ProgressCallback, format_bytes, format_duration
from .pull import PullResult, apull, aresolve

__all__ = [
    "CachedModel",
    "Catalog",
    "CatalogEntry",
    "Disclosure",
    "DiskFull",
    "DownloadError",
    "ModelCache",
    "NotCached",
    "Progress",
    "ProgressCallback",
    "PullResult",
    "VerifyResult",
    "adisclose",
    "apull",
    "aresolve",
    "disclose",
    "format_bytes",
    "format_duration",
    "load_catalog",
    "pull",
    "resolve",
]

def resolve(name: str, settings: Settings, *, progress: ProgressCallback | None = None,
            allow_download: bool = True, policy: EgressPolicy | None = None) -> Path:
    """A verified local file for a catalog entry (or a name pulled before, or a URL).

    A package or file source is used in place after a hash check; anything else comes
    from the cache, downloaded first if needed (unless ``allow_download`` is False:
    then ``NotCached``). Before a download starts, ``progress`` receives a ``plan``
    event saying what will be fetched, how big it is, and how long it may take.
    Downloads go through ``policy`` (default: one recording into the egress ledger).
    """
    return run_sync(lambda: aresolve(name, settings, progress=progress,
                                     allow_download=allow_download, policy=policy))


def disclose(name_or_url: str, settings: Settings, *, sha256: str | None = None,
             name: str | None = None, policy: EgressPolicy | None = None) -> Disclosure:
    """Size, estimated time, free disk, RAM fit, cached?, sources: before any download
    (an ad-hoc URL of unknown size gets one HEAD request, no body)."""
    return run_sync(lambda: adisclose(name_or_url, settings, sha256=sha256, name=name,
                                      policy=policy))


def pull(target: str, settings: Settings, *, sha256: str | None = None, name: str | None = None,
         progress: ProgressCallback | None = None, ollama_url: str | None = None,
         policy: EgressPolicy | None = None) -> PullResult:
    """Fetch a catalog model, a URL (``--sha256`` to verify it) or ``ollama:NAME``."""
    return run_sync(lambda: apull(target, settings, sha256=sha256, name=name,
                                  progress=progress, ollama_url=ollama_url, policy=policy))
