"""One Responses request translated to a chat request (previous turns + input +
instructions), and the ``response`` object that echoes it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ...types import ChatRequest, new_id
from ..errors import InvalidRequest, from_validation
from .items import item_messages
from .output import output_messages
from .request import PreviousResponseNotFound, ResponsesRequest
from .store import ResponseStore
from .tools import chat_format, chat_tool_choice, chat_tools

# finish_reason → the response's incomplete_details (any other: complete).
INCOMPLETE = {"length": {"reason": "max_output_tokens"}}


@dataclass
class Turn:
    """One request, translated: what to send, and what the response object echoes."""

    req: ResponsesRequest
    chat: ChatRequest
    conversation: list[dict[str, Any]]  # previous turns + this input, without instructions
    id: str = field(default_factory=lambda: new_id("resp").replace("-", "_"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def response(self, model: str, status: str, output: list[dict[str, Any]],
                 usage: dict[str, Any] | None, finish: str | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        req = self.req
        reason = INCOMPLETE.get(finish or "")
        incomplete = dict(reason) if reason else None
        if incomplete and status == "completed":
            status = "incomplete"
        return {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "error": error, "incomplete_details": incomplete,
            "model": model, "output": output, "usage": usage,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
            "temperature": req.temperature, "top_p": req.top_p,
            "tools": req.tools or [], "tool_choice": req.tool_choice or "auto",
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id, "store": req.store,
            "text": req.text or {"format": {"type": "text"}}, "truncation": "disabled",
            "metadata": req.metadata or {}, "user": req.user,
        }

    def keep(self, store: ResponseStore, response: dict[str, Any]) -> None:
        if self.req.store and response["status"] in ("completed", "incomplete"):
            store.put(response, self.conversation + output_messages(response["output"]))


def translate(req: ResponsesRequest, store: ResponseStore) -> Turn:
    conversation: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        previous = store.get(req.previous_response_id)
        if previous is None:
            raise PreviousResponseNotFound(
                f"previous response '{req.previous_response_id[:80]}' is not kept by this "
                "gateway (unknown, made with store: false, or dropped since: it keeps the "
                f"last {store.max_items} in memory until it restarts); send the whole "
                "conversation as input instead", param="previous_response_id")
        conversation = [dict(m) for m in previous.messages]
    conversation += item_messages(req.input) if req.input else []
    if not conversation or all(m["role"] == "system" for m in conversation):
        raise InvalidRequest("input is empty: send a string or at least one message item",
                             param="input")
    lead = [{"role": "system", "content": req.instructions}] if req.instructions else []
    body: dict[str, Any] = {"model": req.model, "messages": lead + conversation,
                            "stream": req.stream}
    fields: dict[str, Any] = {
        "max_tokens": req.max_output_tokens, "temperature": req.temperature,
        "top_p": req.top_p, "tool_choice": chat_tool_choice(req.tool_choice),
        "response_format": chat_format(req.text),
        "parallel_tool_calls": req.parallel_tool_calls, "seed": req.seed}
    if req.tools:
        fields["tools"] = chat_tools(req.tools)
    body.update({k: v for k, v in fields.items() if v is not None})
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None
    return Turn(req, chat, conversation)
