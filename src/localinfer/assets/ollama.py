"""Ask an Ollama server to pull a model into its own store (``POST /api/pull``).

Ollama streams NDJSON progress, one object per line: ``{"status": ...}`` and, while a
layer downloads, ``digest``/``total``/``completed`` for that layer. A model has several
layers, so overall progress is the sum over the digests seen so far. An ``error`` key
ends the pull with that message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import DownloadError
from ..http import (
    EgressPolicy,
    HTTPError,
    Transport,
    backend_error,
    make_client,
    ndjson_objects,
    network_class,
    parse_url,
)
from ..types import Tier
from .progress import Progress, ProgressCallback


@dataclass(frozen=True)
class OllamaPullResult:
    model: str
    server: str
    total: int
    statuses: list[str]
    seconds: float


async def ollama_pull(model: str, base_url: str, policy: EgressPolicy, *,
                      connect_timeout: float = 3.0,
                      progress: ProgressCallback | None = None,
                      transport: Transport | None = None) -> OllamaPullResult:
    url = parse_url(base_url)
    tier: Tier = "remote" if network_class(url.host or "") == "public" else "local"
    totals: dict[str, int] = {}
    completed: dict[str, int] = {}
    statuses: list[str] = []
    started = time.monotonic()
    async with make_client(policy, tier=tier, purpose="download", base_url=base_url.rstrip("/"),
                           connect_timeout=connect_timeout, read_timeout=None,
                           transport=transport, max_response_bytes=None) as client:
        try:
            async with client.stream("POST", "/api/pull",
                                     json={"model": model, "stream": True}) as response:
                await response.raise_for_status()
                async for event in ndjson_objects(response.aiter_lines()):
                    if "error" in event:
                        raise DownloadError(f"Ollama at {base_url} could not pull {model}: "
                                            f"{event['error']}")
                    status = str(event.get("status", ""))
                    if status and (not statuses or statuses[-1] != status):
                        statuses.append(status)
                    digest = event.get("digest")
                    if digest and isinstance(event.get("total"), int):
                        totals[digest] = int(event["total"])
                        completed[digest] = int(event.get("completed") or 0)
                    done, total = sum(completed.values()), sum(totals.values())
                    elapsed = time.monotonic() - started
                    speed = done / elapsed if elapsed > 0 and done else None
                    eta = (total - done) / speed if speed and total else None
                    if progress:
                        progress(Progress("ollama", done, total or None, eta, speed, status))
        except DownloadError:
            raise
        except HTTPError as exc:
            err = backend_error(exc, "ollama", base_url)
            raise DownloadError(err.message) from None
    if not statuses or statuses[-1] != "success":
        raise DownloadError(f"Ollama at {base_url} ended the pull of {model} without "
                            f"success (last status: {statuses[-1] if statuses else 'none'})")
    return OllamaPullResult(model, base_url, sum(totals.values()), statuses,
                            time.monotonic() - started)
