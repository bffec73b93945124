"""A protocol fake of llamafile's server, written from llamafile's public sources
(llamafile/server/client.cpp: every response carries ``Server: llamafile/<version>``;
llamafile/server/v1_models.cpp: one model with ``owned_by: "llamafile"``).
llamafile binaries are downloaded from its releases, which this machine cannot reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import FakeModel, FakeServer


@dataclass
class LlamafileFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("SmolLM2-135M-Instruct.Q4_1")])
    reply_prefix: str = "llamafile-fake: "
    owned_by: str = "llamafile"
    version: str = "0.9.3"

    def response_headers(self) -> dict[str, str]:
        return {"server": f"llamafile/{self.version}"}
