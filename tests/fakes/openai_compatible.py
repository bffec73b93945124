"""A generic OpenAI-compatible server, written from OpenAI's public API reference
(``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/embeddings``) and nothing
more: what discovery reports as ``openai-compatible``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import FakeModel, FakeServer


@dataclass
class OpenAICompatibleFake(FakeServer):
    models: list[FakeModel] = field(
        default_factory=lambda: [FakeModel("local-chat"),
                                 FakeModel("local-embed", kind="embeddings")])
    reply_prefix: str = "openai-fake: "
    owned_by: str = "me"
