"""The two streamed formats servers answer in: server-sent events (OpenAI) and
newline-delimited JSON (Ollama), read from a response's lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..errors import StreamTruncated


async def sse_payloads(lines: AsyncIterator[bytes], *,
                       source: str = "the server") -> AsyncIterator[bytes]:
    """The ``data:`` payloads of a server-sent-event stream given as lines (no line
    ends), ending at ``[DONE]``; payload bytes, so they may be sent on untouched. A
    stream that ends without ``[DONE]`` raises StreamTruncated after its last payload
    (a caller that accepts another end marker, e.g. a ``finish_reason``, catches it)."""
    data: list[bytes] = []
    async for line in lines:
        if not line:
            if data:
                payload = data[0] if len(data) == 1 else b"\n".join(data)
                data = []
                if payload.strip() == b"[DONE]":
                    return
                yield payload
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        if b"\n".join(data).strip() == b"[DONE]":
            return
        yield b"\n".join(data)
    raise StreamTruncated(f"{source} closed the stream before its end marker ([DONE]): "
                          "the answer is incomplete", before_first_token=False)


async def ndjson_objects(lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """One JSON object per non-empty line (Ollama's streaming format)."""
    async for line in lines:
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                yield value
