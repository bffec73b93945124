"""How a prompt, a message list and a system prompt become the messages of one chat
request: the one rule shared by ``client.py`` and the tool loop (``tools/loop.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .types import ChatMessage

MessageLike = ChatMessage | Mapping[str, Any]


def build_messages(prompt: str | None, messages: Sequence[MessageLike] | None,
                   system: str | None) -> list[ChatMessage]:
    """``messages`` (dicts validated), then ``prompt`` as the user's turn; ``system``
    first unless the messages already carry a system message."""
    built = [m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m)
             for m in (messages or [])]
    if prompt is not None:
        built.append(ChatMessage(role="user", content=prompt))
    if system is not None and not any(m.role == "system" for m in built):
        built.insert(0, ChatMessage(role="system", content=system))
    return built
