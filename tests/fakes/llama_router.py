"""A protocol fake of llama-server in router mode (started without ``-m``), written from
llama.cpp's tools/server/README.md ("Using multiple models") and the Hugging Face post
"New in llama.cpp: Model Management" (2025-12-11):

* ``GET /models`` and ``GET /v1/models`` list every model it can serve, each with
  ``status.value`` ``loaded`` / ``loading`` / ``unloaded``;
* ``POST /models/load`` and ``POST /models/unload`` with ``{"model": ID}``;
* a request naming an unloaded model loads it (unless ``--no-models-autoload``), and
  while it loads the server answers ``503`` ``{"error": {"code": 503, "message":
  "Loading model", "type": "unavailable_error"}}``;
* past ``--models-max`` (default 4) the least recently used model is unloaded;
* ``GET /props`` answers ``{"role": "router", "build_info", ...}``.

Loading takes ``load_503s`` refused requests rather than wall time, so tests do not
depend on the machine's speed. The real router is tested by the suite where it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


def default_models() -> list[FakeModel]:
    return [FakeModel("qwen2.5-0.5b-instruct", loaded=True),
            FakeModel("smollm2-135m-instruct", loaded=False),
            FakeModel("nomic-embed-text-v1.5", kind="embeddings", loaded=False)]


@dataclass
class LlamaRouterFake(FakeServer):
    models: list[FakeModel] = field(default_factory=default_models)
    reply_prefix: str = "router-fake: "
    owned_by: str = "llamacpp"
    build_info: str = "b7400-0123abc"
    models_max: int = 4
    autoload: bool = True
    load_503s: int = 2  # requests refused with 503 "Loading model" before a load ends
    mcp_proxy: bool = False  # --webui-mcp-proxy: serves /cors-proxy
    loading: dict[str, int] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)  # least recently used first

    def response_headers(self) -> dict[str, str]:
        return {"server": "llama.cpp"}

    def native_routes(self) -> list[Route]:
        routes = [self.route("/health", self.health), self.route("/props", self.props),
                  self.route("/models", self.v1_models),
                  self.route("/models/load", self.load, "POST"),
                  self.route("/models/unload", self.unload, "POST")]
        if self.mcp_proxy:
            routes.append(self.route("/cors-proxy", self.cors_proxy))
        return routes

    def status(self, model: FakeModel) -> str:
        return "loading" if model.id in self.loading else \
            "loaded" if model.loaded else "unloaded"

    def model_entry(self, model: FakeModel) -> dict[str, Any]:
        return {**super().model_entry(model), "in_cache": True,
                "path": f"/models/{model.id}.gguf",
                "status": {"value": self.status(model), "args": ["llama-server", "-c", "4096"]}}

    async def health(self, request: Request, body: Any) -> Response:
        return JSONResponse({"status": "ok"})

    async def props(self, request: Request, body: Any) -> Response:
        return JSONResponse({"role": "router", "build_info": self.build_info,
                             "max_instances": self.models_max,
                             "models_autoload": self.autoload})

    async def cors_proxy(self, request: Request, body: Any) -> Response:
        return JSONResponse({"error": {"message": "missing url", "code": 400}}, status_code=400)

    def _finish_load(self, model: FakeModel) -> None:
        self.loading.pop(model.id, None)
        model.loaded = True
        self.touch(model)
        loaded = [m for m in self.used if (found := self.find(m)) and found.loaded]
        for victim in loaded[: max(0, len(loaded) - self.models_max)]:
            self.find(victim).loaded = False  # type: ignore[union-attr]
            self.used.remove(victim)

    def touch(self, model: FakeModel) -> None:
        if model.id in self.used:
            self.used.remove(model.id)
        self.used.append(model.id)

    def _start_or_continue(self, model: FakeModel) -> Response | None:
        """None when the model can serve now; else the 503 a loading model answers."""
        if model.loaded:
            self.touch(model)
            return None
        left = self.loading.setdefault(model.id, self.load_503s)
        if left <= 0:
            self._finish_load(model)
            return None
        self.loading[model.id] = left - 1
        return JSONResponse({"error": {"code": 503, "message": "Loading model",
                                       "type": "unavailable_error"}}, status_code=503)

    async def load(self, request: Request, body: Any) -> Response:
        model = self.find(body.get("model") if isinstance(body, dict) else None)
        if model is None:
            return self.model_not_found(body)
        self._finish_load(model)
        return JSONResponse({"success": True})

    async def unload(self, request: Request, body: Any) -> Response:
        model = self.find(body.get("model") if isinstance(body, dict) else None)
        if model is None:
            return self.model_not_found(body)
        model.loaded = False
        if model.id in self.used:
            self.used.remove(model.id)
        return JSONResponse({"success": True})

    def _routed(self, body: Any) -> Response | None:
        """What the router answers before the model does: None to let it answer."""
        model = self.find(body.get("model") if isinstance(body, dict) else None)
        if model is None:
            return None
        if not model.loaded and not self.autoload:
            return JSONResponse({"error": {"code": 400, "message": "model is not loaded",
                                           "type": "invalid_request_error"}}, status_code=400)
        return self._start_or_continue(model)

    async def v1_chat(self, request: Request, body: Any) -> Response:
        return self._routed(body) or await super().v1_chat(request, body)

    async def v1_embeddings(self, request: Request, body: Any) -> Response:
        return self._routed(body) or await super().v1_embeddings(request, body)
