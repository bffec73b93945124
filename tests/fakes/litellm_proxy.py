"""A router-shaped host: an OpenAI-compatible proxy in front of several deployments, as
LiteLLM's proxy presents itself (written from LiteLLM's public proxy docs, not from its
code; LiteLLM is not installed here). What matters to localinfer: every route, the
model list included, needs ``Authorization: Bearer <master key>``; ``/v1/models`` lists
model *group* names; each answer comes from one of the deployments behind it (which
one is the proxy's business). vLLM's router, SGLang's model gateway and llama-server's
router mode look the same from outside: one OpenAI endpoint over many engines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer, Handler


@dataclass
class LiteLLMProxyFake(FakeServer):
    master_key: str = "sk-fake-master"
    models: list[FakeModel] = field(default_factory=lambda: [FakeModel("team-chat")])
    deployments: tuple[str, ...] = ("gpu-a", "gpu-b")
    owned_by: str = "openai"
    reply_prefix: str = "proxy: "
    refused: int = 0
    _turn: Any = field(default=None, init=False, repr=False)

    def route(self, path: str, handler: Handler, method: str = "GET", *,
              inference: bool = False) -> Route:
        inner = super().route(path, handler, method, inference=inference).endpoint

        async def endpoint(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.master_key}":
                self.refused += 1
                return JSONResponse({"error": {"message": "Authentication Error, invalid "
                                               "proxy key", "type": "auth_error",
                                               "code": "401"}}, status_code=401)
            answer: Response = await inner(request)
            return answer
        return Route(path, endpoint, methods=[method])

    def native_routes(self) -> list[Route]:
        return [self.route("/health/readiness", self.readiness)]

    async def readiness(self, request: Request, body: Any) -> Response:
        return JSONResponse({"status": "healthy", "db": "Not connected"})

    def reply(self, messages: Any) -> str:
        if self._turn is None:
            self._turn = itertools.cycle(self.deployments)
        return f"{self.reply_prefix}[{next(self._turn)}] " + super().reply(messages)[
            len(self.reply_prefix):]
