"""Ollama's ``POST /api/pull`` and ``DELETE /api/delete`` over localinfer's model assets.

``/api/pull`` is ``localinfer pull NAME`` for a catalog name (or a name pulled before):
the same disclosure first (size, free disk, RAM fit, as a status line and as data), then
Ollama-style NDJSON status lines as the file arrives — ``pulling manifest``,
``downloading`` (``digest``, ``total``, ``completed``), ``verifying sha256 digest``,
``success`` — or one object with ``"stream": false``. URLs and ``ollama:`` targets are
the CLI's (a request body never points the gateway at an arbitrary host), and a download
above ``download_confirm_bytes`` is refused as the CLI refuses it without a terminal: nobody
can confirm an HTTP request. An error after the 200 is an ``{"error": ...}`` line, as
Ollama sends it. ``/api/delete`` is ``localinfer cache rm NAME`` (404 when not cached).
A damaged ``models/manifest.json`` is a 503 on both, naming it and ``localinfer cache
repair``, before anything is fetched or removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..assets import Disclosure, ModelCache, Progress, adisclose, apull, load_catalog
from ..assets.plan import OLLAMA_PREFIX, is_url
from ..assets.progress import format_bytes
from ..assets.pull import Limits
from ..errors import LocalInferError, ModelNotFound
from ..settings import Settings
from .context import Gateway
from .errors import InvalidRequest
from .ollama_requests import _Open
from .wire import JSONBody, check_model_name, dumps, read_model

NDJSON = "application/x-ndjson"


class ManifestDamaged(LocalInferError):
    """The models manifest is damaged: nothing can be pulled into the cache or removed
    from it until ``localinfer cache repair`` rebuilds it (the message names the file).
    503: the request is fine, the gateway cannot serve it yet."""

    http_status = 503
    error_type = "service_unavailable"
    code = "bad_state_file"


def usable_cache(settings: Settings) -> ModelCache:
    """The model cache, or ManifestDamaged (before any answer, download or change)."""
    cache = ModelCache.for_settings(settings)
    problem = cache.problem()
    if problem is not None:
        raise ManifestDamaged(problem.message)
    return cache


class OllamaPullRequest(_Open):
    model: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, min_length=1)  # older clients send `name`
    insecure: bool | None = None
    # Ollama streams unless told not to.
    stream: bool = True

    @property
    def wanted(self) -> str:
        return self.model or self.name or ""


def wanted_name(req: OllamaPullRequest) -> str:
    name = req.wanted
    if not name:
        raise InvalidRequest("`model` is required", param="model")
    if is_url(name) or name.startswith(OLLAMA_PREFIX):
        raise InvalidRequest(f"/api/pull takes a catalog model name; pull URLs and ollama: "
                             f"models with `localinfer pull {name[:80]}`", param="model")
    check_model_name(name, required=True)
    return name


def disclosure_line(info: Disclosure) -> str:
    """The CLI's disclosure, on one line (the status an Ollama client prints)."""
    fit = {True: "fits", False: "does NOT fit", None: "unknown"}[info.fits_ram]
    need = format_bytes(info.ram_needed) if info.ram_needed is not None else "unknown"
    size = ("" if info.size_exact else "about ") + format_bytes(info.size)
    where = "cached" if info.cached else f"fetch {format_bytes(info.download_size)}"
    return (f"localinfer: {info.name}: {size} ({where}); RAM needs {need}, "
            f"{format_bytes(info.ram_available)} available: {fit}")


def limits(name: str, settings: Settings) -> Limits:
    """What nobody can confirm over HTTP, as the CLI without a terminal: a server that
    does not say the size is refused after its headers, and no file grows past
    ``download_confirm_bytes``, announced or as it arrives (a catalog entry need not
    state its size: ``[models.NAME]`` entries, names pulled before)."""
    return Limits(max_size=settings.download_confirm_bytes, refuse_unknown_size=True,
                  cap_name="download_confirm_bytes",
                  unknown_size_fix=f"nobody can confirm it over HTTP; run `localinfer pull "
                                   f"{name} --yes --max-size SIZE`")


async def disclose(name: str, settings: Settings) -> Disclosure:
    info = await adisclose(name, settings)
    if info.needs_confirmation:
        raise InvalidRequest(
            f"refusing to download {format_bytes(info.download_size)} without confirmation "
            f"(above download_confirm_bytes); run `localinfer pull {info.name}` or raise "
            "LOCALINFER_DOWNLOAD_CONFIRM_BYTES", param="model")
    return info


class StatusLines:
    """``Progress`` events (from the event loop or a hashing thread) as Ollama's status
    objects, queued for the response; repeated statuses without bytes are sent once."""

    def __init__(self, digest: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.digest = digest
        self.last: str | None = None

    def put(self, item: dict[str, Any] | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def __call__(self, p: Progress) -> None:
        if p.phase in ("download", "extract"):
            self.last = "downloading"
            self.put({"status": "downloading", "digest": self.digest,
                      "total": p.total or 0, "completed": p.done})
        elif p.phase == "verify" and self.last != "verify":
            self.last = "verify"
            self.put({"status": "verifying sha256 digest"})


async def pull_lines(name: str, info: Disclosure, settings: Settings) -> AsyncIterator[
        dict[str, Any]]:
    yield {"status": "pulling manifest"}
    yield {"status": disclosure_line(info), "localinfer": info.as_json()}
    lines = StatusLines(f"sha256:{info.sha256}" if info.sha256 else "")

    async def run() -> None:
        try:
            await apull(name, settings, progress=lines, limits=limits(name, settings))
            if lines.last != "verify":  # a cached file was checked without progress
                lines.put({"status": "verifying sha256 digest"})
            lines.put({"status": "success"})
        except LocalInferError as exc:
            lines.put({"error": exc.message})
        finally:
            lines.put(None)

    task = asyncio.create_task(run())
    try:
        while (item := await lines.queue.get()) is not None:
            yield item
    finally:
        # A client that hangs up stops the download; its partial file is kept for a resume.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def pull(gw: Gateway, request: Request) -> Response:
    req = await read_model(request, OllamaPullRequest, gw.settings.max_body_bytes)
    name = wanted_name(req)
    usable_cache(gw.settings)  # 503 naming the damaged manifest, before the 200
    info = await disclose(name, gw.settings)  # 404 for an unknown name, before the 200
    if not req.stream:  # one object; a failure keeps its own status (502, 507, …)
        result = await gw.until_disconnect(request, lambda: apull(
            name, gw.settings, limits=limits(name, gw.settings)))
        if result is None:
            return Response(status_code=499)
        return JSONBody({"status": "success", "localinfer": info.as_json()})
    lines = pull_lines(name, info, gw.settings)

    async def body() -> AsyncIterator[bytes]:
        async for item in lines:
            yield dumps(item) + b"\n"

    return StreamingResponse(body(), media_type=NDJSON)


async def delete(gw: Gateway, request: Request) -> Response:
    req = await read_model(request, OllamaPullRequest, gw.settings.max_body_bytes)
    name = req.wanted
    check_model_name(name, required=True)
    cache = usable_cache(gw.settings)
    entry = load_catalog(gw.settings).find(name)
    for candidate in dict.fromkeys([name, entry.name if entry else name]):
        if cache.get(candidate) is not None:
            cache.remove(candidate)
            return Response(status_code=200)
    raise ModelNotFound(name, [m.name for m in cache.models()])


def pull_routes(gw: Gateway) -> list[Route]:
    async def post_pull(request: Request) -> Response:
        return await pull(gw, request)

    async def delete_model(request: Request) -> Response:
        return await delete(gw, request)

    return [Route("/api/pull", post_pull, methods=["POST"]),
            Route("/api/delete", delete_model, methods=["DELETE"])]
