"""A protocol fake of the GPT4All chat application's API server, written from its public
sources and docs (gpt4all-chat/src/server.cpp: ``/v1/models`` entries with
``owned_by: "humanity"`` and a ``permission`` list; docs: port 4891, base ``/v1``).
GPT4All is a desktop app, not installed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import FakeModel, FakeServer


@dataclass
class GPT4AllFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("Llama 3.2 1B Instruct")])
    reply_prefix: str = "gpt4all-fake: "
    owned_by: str = "humanity"

    def model_entry(self, model: FakeModel) -> dict[str, Any]:
        return {"id": model.id, "object": "model", "created": 0, "owned_by": "humanity",
                "root": model.id, "parent": None,
                "permission": [{"id": "placeholder", "object": "model_permission",
                                "created": 0, "allow_create_engine": False}]}
