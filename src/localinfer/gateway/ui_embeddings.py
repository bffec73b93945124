"""``/ui/embeddings/``: the embedding model folder for the page's transformers.js.

- ``/ui/embeddings/manifest.json`` the model id, dimensions and every file's size and
  sha256 (the page verifies each file against it before use);
- ``/ui/embeddings/{model}/{path}`` one of those files (GET/HEAD, the sha256 as ``ETag``,
  ``If-None-Match`` answers 304). Only files the manifest lists are served.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..settings import Settings
from ..web.embed_assets import embed_manifest, embed_model

TYPES = {".json": "application/json", ".onnx": "application/octet-stream"}


def _not_found(message: str, headers: dict[str, str]) -> Response:
    return JSONResponse({"error": {"message": message, "type": "not_found", "param": None,
                                   "code": "not_found"}}, status_code=404, headers=headers)


def embedding_routes(settings: Settings, headers: dict[str, str]) -> list[BaseRoute]:
    async def manifest(request: Request) -> Response:
        body = await asyncio.to_thread(embed_manifest, settings)
        return JSONResponse(body, headers={**headers, "cache-control": "no-cache"})

    async def model_file(request: Request) -> Response:
        name, path = request.path_params["model"], request.path_params["path"]
        model = await asyncio.to_thread(embed_model, settings)
        found = model.files.get(path) if model is not None and model.id == name else None
        if found is None:
            return _not_found(f"no embedding file '{name[:80]}/{path[:80]}'; see "
                              "/ui/embeddings/manifest.json", headers)
        etag = f'"{found.sha256}"'
        base = {**headers, "etag": etag, "cache-control": "no-cache",
                "x-localinfer-sha256": found.sha256}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=base)
        suffix = "." + path.rsplit(".", 1)[-1]
        if request.method == "HEAD":
            return Response(status_code=200, headers={
                **base, "content-length": str(found.size),
                "content-type": TYPES.get(suffix, "application/octet-stream")})
        # FileResponse sets its own etag from mtime; ours (the sha256) wins.
        response = FileResponse(found.source, media_type=TYPES.get(suffix),
                                headers=base)
        response.headers["etag"] = etag
        return response

    return [
        Route("/ui/embeddings/manifest.json", manifest, methods=["GET", "HEAD"]),
        Route("/ui/embeddings/{model}/{path:path}", model_file, methods=["GET", "HEAD"]),
    ]
