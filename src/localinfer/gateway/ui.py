"""``/ui/``: the browser tier, served by the gateway.

- ``/ui/`` the demo app, ``/ui/localinfer.js`` the SDK (a stable URL), its worker and
  modules, ``/ui/vendor/...`` the pinned engine files (built from package-lock.json);
- ``/ui/manifest.json`` the engine files and the models, with sizes, sha256s, licences;
- ``/ui/models/{name}`` a model file: GET and HEAD, single ``Range``, the sha256 as
  ``ETag`` (``If-None-Match`` answers 304).

Every answer carries COOP/COEP/CORP and a strict CSP: scripts only from this origin
(plus ``'wasm-unsafe-eval'`` for the engine), workers from this origin or ``blob:``
(wllama starts its own worker from a blob), connections only to this origin and the
servers and remotes configured in settings. Nothing loads from a CDN. The gateway's
Host/Origin rules apply to these routes as to every other.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..hosts.url import origin
from ..settings import Settings
from ..web.assets import STATIC_ROOT, WebModel, ui_manifest, web_models
from .ui_embeddings import embedding_routes
from .ui_sandbox import sandbox_routes

CHUNK = 1 << 20
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml",
         ".png": "image/png", "": "text/plain; charset=utf-8"}
SERVED_SUFFIXES = frozenset(TYPES)


def connect_sources(settings: Settings) -> list[str]:
    """Origins the page may connect to besides its own: configured servers and remotes.
    Each is rebuilt from a validated URL's scheme, host and port, so no user:password,
    quote or ';' can reach the header."""
    found: list[str] = []
    urls = [*settings.servers, *(str(r.get("base_url", "")) for r in settings.remotes.values())]
    for url in urls:
        source = origin(url)
        if source is not None and source not in found:
            found.append(source)
    return found


def security_headers(settings: Settings) -> dict[str, str]:
    # blob: the engine worker hands wllama its wasm and model as blob URLs.
    connect = " ".join(["'self'", "blob:", *connect_sources(settings)])
    csp = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; "
           "worker-src 'self' blob:; "
           f"connect-src {connect}; img-src 'self' data:; style-src 'self'; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"content-security-policy": csp,
            "cross-origin-opener-policy": "same-origin",
            "cross-origin-embedder-policy": "require-corp",
            "cross-origin-resource-policy": "same-origin",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer"}


def _static_file(relative: str) -> Path | None:
    """A file under static/, never outside it, never a Python or hidden file."""
    if not relative or relative.endswith("/"):
        relative += "index.html"
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    if not relative.isprintable():  # a NUL made pathlib raise: 500 instead of 404
        return None
    try:
        path = (STATIC_ROOT / relative).resolve()
        if STATIC_ROOT not in path.parents or not path.is_file():
            return None
    except (OSError, ValueError):  # a name too long, undecodable, …: no such file here
        return None
    if path.suffix not in SERVED_SUFFIXES:
        return None
    return path


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive), None for no/ignored range, "bad" when unsatisfiable."""
    match = RANGE.match(header.strip())
    if not match:
        return None  # multi-range or another unit: serve the whole file (allowed)
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            return "bad"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "bad"
    return start, end


async def _file_chunks(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    remaining = end - start + 1
    with open(path, "rb") as fh:
        fh.seek(start)
        while remaining > 0:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


def ui_routes(settings: Settings) -> list[BaseRoute]:
    headers = security_headers(settings)
    models_cache: dict[str, dict[str, WebModel]] = {}

    def models() -> dict[str, WebModel]:
        if "all" not in models_cache:
            models_cache["all"] = web_models(settings)
        return models_cache["all"]

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=308, headers=headers)

    async def manifest(request: Request) -> Response:
        chosen = await asyncio.to_thread(models)
        return JSONResponse(ui_manifest(settings, models=chosen),
                            headers={**headers, "cache-control": "no-cache"})

    async def model_file(request: Request) -> Response:
        name = request.path_params["name"]
        model = (await asyncio.to_thread(models)).get(name)
        if model is None:
            return JSONResponse({"error": {"message": f"no model '{name[:80]}' here; see "
                                           "/ui/manifest.json", "type": "not_found",
                                           "param": None, "code": "model_not_found"}},
                                status_code=404, headers=headers)
        etag = f'"{model.sha256}"'
        base = {**headers, "etag": etag, "accept-ranges": "bytes",
                "cache-control": "no-cache", "x-localinfer-sha256": model.sha256,
                "content-type": "application/octet-stream"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=base)
        size = model.size
        wanted = _parse_range(request.headers.get("range", ""), size)
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            wanted = None
        if wanted == "bad":
            return Response(status_code=416, headers={**base, "content-range": f"bytes */{size}"})
        start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
        status = 206 if isinstance(wanted, tuple) else 200
        extra: dict[str, str] = {"content-length": str(end - start + 1)}
        if status == 206:
            extra["content-range"] = f"bytes {start}-{end}/{size}"
        if request.method == "HEAD":
            return Response(status_code=status, headers={**base, **extra})
        return StreamingResponse(_file_chunks(model.path, start, end), status_code=status,
                                 headers={**base, **extra})

    async def static(request: Request) -> Response:
        relative = request.path_params.get("path", "")
        path = _static_file(relative)
        if path is None:
            return JSONResponse({"error": {"message": f"no file /ui/{relative[:80]}",
                                           "type": "not_found", "param": None,
                                           "code": "not_found"}},
                                status_code=404, headers=headers)
        st = path.stat()
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        extra: dict[str, Any] = {"cache-control": "no-cache", "etag": etag}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={**headers, **extra})
        body = await asyncio.to_thread(path.read_bytes)
        ctype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        return Response(body if request.method == "GET" else b"", media_type=ctype,
                        headers={**headers, **extra, "content-length": str(len(body))})

    return [
        Route("/ui", redirect, methods=["GET", "HEAD"]),
        Route("/ui/manifest.json", manifest, methods=["GET", "HEAD"]),
        Route("/ui/models/{name}", model_file, methods=["GET", "HEAD"]),
        *embedding_routes(settings, headers),
        *sandbox_routes(headers),
        Route("/ui/{path:path}", static, methods=["GET", "HEAD"]),
    ]
