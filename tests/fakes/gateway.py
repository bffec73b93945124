"""An impostor of localinfer's own gateway, as the gateway issue specifies it:
``GET /health`` answers ``{"status": "ok", "service": "localinfer"}`` with the header
``x-localinfer-service: gateway``, next to an OpenAI-compatible ``/v1``. Discovery must
skip it, or the router would send requests to itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeModel, FakeServer


@dataclass
class GatewayFake(FakeServer):
    models: list[FakeModel] = field(default_factory=lambda: [FakeModel("smollm2:135m")])
    reply_prefix: str = "gateway-fake: "
    owned_by: str = "localinfer"
    # Which self-identifications to send: the header, the JSON field, or both.
    send_header: bool = True
    send_body: bool = True

    def response_headers(self) -> dict[str, str]:
        return {"x-localinfer-service": "gateway"} if self.send_header else {}

    def native_routes(self) -> list[Route]:
        return [self.route("/health", self.health)]

    async def health(self, request: Request, body: Any) -> Response:
        payload: dict[str, Any] = {"status": "ok"}
        if self.send_body:
            payload["service"] = "localinfer"
        return JSONResponse(payload)
