"""A parsed reply and the server bytes it keeps can never disagree: replies are
immutable, the only change a parsed reply takes is where it came from (never on the
wire), and a changed copy keeps no bytes (backends/passthrough.py, types.py)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from localinfer.backends.passthrough import chunk_from_wire, reply_from_wire, wire_bytes
from localinfer.gateway.streaming import SSEEncoder

CHUNK = (b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
         b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],'
         b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}')
REPLY = (b'{"id":"r1","object":"chat.completion","created":1,"model":"m",'
         b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
         b'"finish_reason":"stop"}]}')


def test_a_parsed_reply_keeps_its_bytes_and_refuses_changes() -> None:
    chunk, reply = chunk_from_wire(CHUNK), reply_from_wire(REPLY)
    assert wire_bytes(chunk) == CHUNK and wire_bytes(reply) == REPLY
    assert chunk.usage is not None
    for target, name, value in ((chunk, "usage", None),
                                (chunk.choices[0], "finish_reason", "length"),
                                (chunk.choices[0].delta, "content", "bye"),
                                (chunk.usage, "total_tokens", 9),
                                (reply, "model", "other"),
                                (reply.choices[0], "finish_reason", None),
                                (reply.choices[0].message, "content", "bye")):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(target, name, value)
    assert wire_bytes(chunk) == CHUNK and wire_bytes(reply) == REPLY


def test_where_it_came_from_is_set_without_touching_the_bytes() -> None:
    chunk = chunk_from_wire(CHUNK).served_by("llama.cpp@8080", "local", host="box")
    assert (chunk.backend, chunk.tier, chunk.host) == ("llama.cpp@8080", "local", "box")
    assert wire_bytes(chunk) == CHUNK  # none of it is serialised
    assert "backend" not in chunk.model_dump_json()


def test_a_changed_copy_keeps_no_bytes_and_says_the_change() -> None:
    chunk = chunk_from_wire(CHUNK).served_by("b", "local")
    copy = chunk.model_copy(update={"usage": None})
    assert wire_bytes(copy) is None and copy.backend == "b"
    assert "usage" not in json.loads(copy.model_dump_json(exclude_none=True))


def test_the_sse_encoder_moves_usage_without_sending_stale_bytes() -> None:
    encoder = SSEEncoder(include_usage=True)
    frame = encoder.chunk(chunk_from_wire(CHUNK))
    sent = json.loads(frame.removeprefix(b"data: "))
    assert "usage" not in sent and sent["choices"][0]["delta"]["content"] == "hi"
    tail = encoder.end().split(b"\n\n")
    assert json.loads(tail[0].removeprefix(b"data: "))["usage"]["total_tokens"] == 4
