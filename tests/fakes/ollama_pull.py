"""A protocol fake of Ollama's ``POST /api/pull``, written from Ollama's public API
documentation (docs.ollama.com/api, "Pull a Model"): the request body is
``{"model": NAME, "insecure": bool, "stream": bool}``; a streamed response is NDJSON,
``{"status": "pulling manifest"}``, then per layer ``{"status": "pulling <digest12>",
"digest": "sha256:...", "total": N, "completed": M}`` lines, then ``{"status":
"verifying sha256 digest"}``, ``{"status": "writing manifest"}``, ``{"status":
"success"}``. A failure is a line ``{"error": "..."}``. With ``stream: false`` only the
final object is returned.

Ollama cannot be installed here; no bytes are really downloaded by this fake.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

STEP = 1 << 20


def layer(name: str, size: int) -> tuple[str, int]:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest(), size


@dataclass
class OllamaPullFake:
    # model name -> its layers (digest, size), as a registry manifest lists them
    models: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: {
        "smollm2:135m": [layer("weights", 3 * STEP + 123), layer("template", 1_000),
                         layer("params", 120)],
    })
    requests: list[dict[str, Any]] = field(default_factory=list)

    def events(self, model: str) -> list[dict[str, Any]]:
        layers = self.models.get(model) or self.models.get(f"{model}:latest")
        if layers is None:
            return [{"status": "pulling manifest"},
                    {"error": "pull model manifest: file does not exist"}]
        out: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        for digest, size in layers:
            status = f"pulling {digest.removeprefix('sha256:')[:12]}"
            done = 0
            while True:
                out.append({"status": status, "digest": digest, "total": size,
                            "completed": done})
                if done >= size:
                    break
                done = min(size, done + STEP)
        out += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                {"status": "success"}]
        return out

    def app(self) -> Starlette:
        async def pull(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            model = str(body.get("model") or body.get("name") or "")
            events = self.events(model)
            if body.get("stream") is False:
                last = events[-1]
                return JSONResponse(last, status_code=500 if "error" in last else 200)

            async def lines() -> AsyncIterator[bytes]:
                for event in events:
                    yield (json.dumps(event) + "\n").encode()

            return StreamingResponse(lines(), media_type="application/x-ndjson")

        return Starlette(routes=[Route("/api/pull", pull, methods=["POST"])])
