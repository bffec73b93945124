"""Responses kept for ``previous_response_id`` and ``GET /v1/responses/{id}``."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..wire import dumps

# How many responses, and how many bytes of conversation, the gateway keeps for
# previous_response_id: enough for several agents' chats, bounded for a long-lived process.
MAX_STORED = 512
MAX_STORED_BYTES = 64 * 1024 * 1024


@dataclass
class Stored:
    response: dict[str, Any]
    messages: list[dict[str, Any]]  # the conversation so far, without instructions
    size: int


@dataclass
class ResponseStore:
    """Responses kept for ``previous_response_id``, for the gateway's life, bounded in
    count and bytes (oldest dropped first)."""

    max_items: int = MAX_STORED
    max_bytes: int = MAX_STORED_BYTES
    items: OrderedDict[str, Stored] = field(default_factory=OrderedDict)
    size: int = 0

    def put(self, response: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        entry = Stored(response, messages, len(dumps(messages)) + len(dumps(response)))
        self.items[response["id"]] = entry
        self.size += entry.size
        while self.items and (len(self.items) > self.max_items or self.size > self.max_bytes):
            _, old = self.items.popitem(last=False)
            self.size -= old.size

    def get(self, response_id: str) -> Stored | None:
        entry = self.items.get(response_id)
        if entry is not None:
            self.items.move_to_end(response_id)  # a chat in use outlives idle ones
        return entry
