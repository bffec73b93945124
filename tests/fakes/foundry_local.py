"""A protocol fake of Microsoft Foundry Local's service, written from its public docs
(learn.microsoft.com/azure/ai-foundry/foundry-local/reference/reference-rest: the
OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``; the service binds a new
random port at every start, printed by ``foundry service status``). Its ``/v1/models``
body carries ``IsDelta``, ``Successful`` and ``HttpStatusCode`` next to the list (as
issue 23 records; the REST reference does not show that body). Foundry Local runs on
Windows and macOS only: not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeModel, FakeServer


@dataclass
class FoundryLocalFake(FakeServer):
    models: list[FakeModel] = field(default_factory=lambda: [
        FakeModel("qwen2.5-0.5b-instruct-generic-cpu")])
    reply_prefix: str = "foundry-fake: "
    owned_by: str = "Microsoft"

    async def v1_models(self, request: Request, body: Any) -> Response:
        return JSONResponse({"object": "list",
                             "data": [self.model_entry(m) for m in self.listed()],
                             "IsDelta": False, "Successful": True, "HttpStatusCode": 200})
