"""Replies that keep the server's own bytes, so the gateway can send them on untouched.

Parsing a reply is still needed (routing, failover, usage, the Ollama and Responses
dialects read it), but writing it again is not when the client asked in the server's
own dialect: OpenAI's chat route in front of an OpenAI-compatible server (the only
caller of ``wire_bytes``; the Ollama and Responses encoders always write their own).
A reply keeps its bytes only when they already hold every field a re-serialised reply
would have filled in (ids, object, created, indexes, the finish reason), so passing
them on changes nothing a client can rely on.

The bytes stay true by construction, not by convention: replies are immutable
(types.py), and the one way to change one, ``model_copy(update=...)``, makes a copy
without them (a slot is not copied), so a changed reply is always serialised again.
"""

from __future__ import annotations

from ..types import ChatChunk, ChatResponse

# What the models would otherwise default (a fresh id, the time, index 0).
_TOP = frozenset({"id", "object", "created", "model", "choices"})
_CHOICE = frozenset({"index"})
_DELTA = frozenset({"index", "delta"})


# A slot, not a pydantic PrivateAttr: private attributes cost ~20 µs per model built
# (pydantic initialises them in Python), more than parsing the chunk itself. A slot is
# never serialised, never validated from input, and not carried over by model_copy.
class WireChatResponse(ChatResponse):
    __slots__ = ("_wire",)


class WireChatChunk(ChatChunk):
    __slots__ = ("_wire",)


def reply_from_wire(data: bytes) -> ChatResponse:
    """A server's non-streamed answer, parsed, keeping its bytes where they will do."""
    reply = WireChatResponse.model_validate_json(data)
    if reply.model_fields_set >= _TOP and all(
            c.finish_reason and c.model_fields_set >= _CHOICE for c in reply.choices):
        _keep(reply, data)
    return reply


def chunk_from_wire(payload: bytes) -> ChatChunk:
    """One streamed chunk (an SSE ``data:`` payload), keeping its bytes where they will
    do: one line only, so they can never split into two events."""
    chunk = WireChatChunk.model_validate_json(payload)
    if (chunk.model_fields_set >= _TOP and b"\n" not in payload and b"\r" not in payload
            and all(c.model_fields_set >= _DELTA for c in chunk.choices)):
        _keep(chunk, payload)
    return chunk


def wire_bytes(value: ChatResponse | ChatChunk) -> bytes | None:
    """The server's bytes for ``value``, or None: serialise it yourself."""
    wire: bytes | None = getattr(value, "_wire", None)
    return wire


def _keep(value: WireChatResponse | WireChatChunk, data: bytes) -> None:
    object.__setattr__(value, "_wire", data)  # the slot (typed here, not in the class)
