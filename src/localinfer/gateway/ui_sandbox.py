"""``/ui/sandbox/…``: the browser sandbox's runtimes and its worker, served by the gateway.

- ``/ui/sandbox/{runtime}-{sha256}.wasm``: the same ``.wasm`` the Python sandbox runs,
  read from the pip-installed package (``localinfer.sandbox.runtimes``) and checked
  against its pinned SHA-256 before the first byte is sent. The name carries the digest,
  so the answer is ``immutable`` (an upgraded runtime has another URL); ETag = sha256.
- ``/ui/sandbox-worker.js``: the worker script with its own CSP, ``connect-src 'none'``
  (a worker's policy comes from its script's response, not from the page), so neither the
  guest nor the worker can fetch, open a WebSocket or start another worker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..errors import SandboxUnavailable
from ..sandbox.runtimes import RUNTIMES, verified_path
from ..web.assets import STATIC_ROOT
from ..web.sandbox_assets import runtime_filename

WORKER = "sandbox-worker.js"
# 'self' for the worker's module imports (its lib and the vendored shim); no
# 'wasm-unsafe-eval': the page compiles the module, the worker only instantiates it.
WORKER_CSP = ("default-src 'none'; script-src 'self'; connect-src 'none'; worker-src 'none'; "
              "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
RUNTIME_FILE = re.compile(r"^([a-z0-9]+)-([0-9a-f]{64})\.wasm$")
CHUNK = 1 << 20


def _not_found(message: str, code: str, headers: Mapping[str, str]) -> Response:
    return JSONResponse({"error": {"message": message, "type": "not_found", "param": None,
                                   "code": code}}, status_code=404, headers=dict(headers))


async def _chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    with open(path, "rb") as fh:
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def sandbox_routes(headers: Mapping[str, str]) -> list[BaseRoute]:
    """The routes, given the gateway's security headers for /ui/ (placed before its
    catch-all static route)."""

    async def runtime_file(request: Request) -> Response:
        name = request.path_params["name"]
        match = RUNTIME_FILE.match(name)
        runtime = RUNTIMES.get(match.group(1)) if match else None
        if runtime is None or match is None or match.group(2) != runtime.sha256:
            return _not_found(f"no sandbox runtime '{name[:90]}'; available: "
                              + ", ".join(runtime_filename(r) for r in RUNTIMES.values()),
                              "sandbox_runtime_not_found", headers)
        try:
            path = await asyncio.to_thread(verified_path, runtime)
        except SandboxUnavailable as exc:
            return _not_found(str(exc), "sandbox_unavailable", headers)
        etag = f'"{runtime.sha256}"'
        base = {**headers, "etag": etag, "x-localinfer-sha256": runtime.sha256,
                "cache-control": "public, max-age=31536000, immutable",
                "content-type": "application/wasm"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=base)
        size = path.stat().st_size
        extra = {"content-length": str(size)}
        if request.method == "HEAD":
            return Response(status_code=200, headers={**base, **extra})
        return StreamingResponse(_chunks(path, size), headers={**base, **extra})

    async def worker(request: Request) -> Response:
        path = STATIC_ROOT / WORKER
        st = path.stat()
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        base = {**headers, "content-security-policy": WORKER_CSP, "cache-control": "no-cache",
                "etag": etag}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=base)
        body = await asyncio.to_thread(path.read_bytes)
        return Response(body if request.method == "GET" else b"",
                        media_type="text/javascript; charset=utf-8",
                        headers={**base, "content-length": str(len(body))})

    return [
        Route("/ui/sandbox/{name}", runtime_file, methods=["GET", "HEAD"]),
        Route(f"/ui/{WORKER}", worker, methods=["GET", "HEAD"]),
    ]
