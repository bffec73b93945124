"""``stream: true``: chat chunks as the Responses API's typed SSE events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import LocalInferError
from ...types import ChatChunk, Usage, new_id
from ..wire import dumps
from .output import call_item, message_item, text_part, usage_of
from .turn import Turn


class ResponseEventEncoder:
    """Chat chunks as the Responses API's typed SSE events: ``event: TYPE`` and ``data``
    with a rising ``sequence_number``. Text opens a message item on its first piece;
    tool calls are gathered and sent as ``function_call`` items at the end (their
    arguments in one delta). No ``[DONE]``: the stream ends with ``response.completed``."""

    media_type = "text/event-stream"

    def __init__(self, turn: Turn, model: str, keep: Callable[[dict[str, Any]], None]) -> None:
        self.turn = turn
        self.model = model
        self.keep = keep
        self.seq = 0
        self.started = False
        self.text: list[str] = []
        self.msg_id = new_id("msg")
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.pieces = 0
        self.finish: str | None = None

    def event(self, kind: str, **data: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(body) + b"\n\n"

    def start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        shell = self.turn.response(self.model, "in_progress", [], None)
        return (self.event("response.created", response=shell)
                + self.event("response.in_progress", response=shell))

    def chunk(self, chunk: ChatChunk) -> bytes:
        out = self.start()
        self.model = chunk.model or self.model
        self.usage = chunk.usage or self.usage
        for choice in chunk.choices:
            self.finish = choice.finish_reason or self.finish
            for delta in choice.delta.tool_calls or []:
                self.merge_call(delta)
            piece = choice.delta.content or ""
            if not piece:
                continue
            if not self.text:
                out += self.event("response.output_item.added", output_index=0,
                                  item=message_item(self.msg_id, "", "in_progress"))
                out += self.event("response.content_part.added", item_id=self.msg_id,
                                  output_index=0, content_index=0, part=text_part(""))
            self.text.append(piece)
            self.pieces += 1
            out += self.event("response.output_text.delta", item_id=self.msg_id,
                              output_index=0, content_index=0, delta=piece, logprobs=[])
        return out

    def merge_call(self, delta: dict[str, Any]) -> None:
        slot = self.calls.setdefault(int(delta.get("index", len(self.calls))),
                                     {"id": None, "function": {"name": "", "arguments": ""}})
        slot["id"] = delta.get("id") or slot["id"]
        fn = delta.get("function") or {}
        slot["function"]["name"] += fn.get("name") or ""
        slot["function"]["arguments"] += fn.get("arguments") or ""

    def end(self) -> bytes:
        out = self.start()
        output: list[dict[str, Any]] = []
        if self.text or not self.calls:
            text = "".join(self.text)
            if not self.text:  # an empty answer still gets its (empty) message item
                out += self.event("response.output_item.added", output_index=0,
                                  item=message_item(self.msg_id, "", "in_progress"))
                out += self.event("response.content_part.added", item_id=self.msg_id,
                                  output_index=0, content_index=0, part=text_part(""))
            out += self.event("response.output_text.done", item_id=self.msg_id,
                              output_index=0, content_index=0, text=text, logprobs=[])
            out += self.event("response.content_part.done", item_id=self.msg_id,
                              output_index=0, content_index=0, part=text_part(text))
            item = message_item(self.msg_id, text)
            out += self.event("response.output_item.done", output_index=0, item=item)
            output.append(item)
        for index in sorted(self.calls):
            done = call_item(self.calls[index])
            at = len(output)
            out += self.event("response.output_item.added", output_index=at,
                              item={**done, "arguments": "", "status": "in_progress"})
            out += self.event("response.function_call_arguments.delta", item_id=done["id"],
                              output_index=at, delta=done["arguments"])
            out += self.event("response.function_call_arguments.done", item_id=done["id"],
                              output_index=at, name=done["name"], arguments=done["arguments"])
            out += self.event("response.output_item.done", output_index=at, item=done)
            output.append(done)
        final = self.turn.response(self.model, "completed", output,
                                   usage_of(self.usage, self.pieces), self.finish)
        self.keep(final)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return out + self.event(kind, response=final)

    def error(self, exc: LocalInferError) -> bytes:
        error = {"code": exc.code or "server_error", "message": exc.message}
        failed = self.turn.response(self.model, "failed", [], None, error=error)
        return (self.start() + self.event("error", param=None, **error)
                + self.event("response.failed", response=failed))
