"""The ``POST /v1/responses`` body, and what is refused in it (a 400 naming the field)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidRequest


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool = True
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    seed: int | None = None
    # Refused unless absent or harmless (REFUSED): typed here so the schema can say so.
    background: bool | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


class PreviousResponseNotFound(InvalidRequest):
    code = "previous_response_not_found"


# field → (is it asked for?, why it is refused). `include: ["reasoning.encrypted_content"]`
# (Codex sends it) is harmless: no reasoning items are ever produced.
HARMLESS_INCLUDES = {"reasoning.encrypted_content"}
REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "background": (bool, "background responses are not supported; send background: false"),
    "include": (lambda v: any(not isinstance(x, str) or x not in HARMLESS_INCLUDES
                              for x in (v or ())),
                "include is not supported (no logprobs, search results or reasoning are "
                "produced)"),
    "reasoning": (lambda v: bool(v) and any(v.get(k) not in (None, "none")
                                            for k in ("effort", "summary")),
                  "reasoning is not supported: the models served here do not reason "
                  "separately"),
    "truncation": (lambda v: v not in (None, "disabled"),
                   "truncation 'auto' is not supported: send the conversation that fits"),
    "top_logprobs": (lambda v: v is not None, "top_logprobs is not supported"),
    "max_tool_calls": (lambda v: v is not None, "max_tool_calls is not supported"),
    "conversation": (lambda v: v is not None,
                     "conversations are not supported; use previous_response_id"),
    "prompt": (lambda v: v is not None, "prompt templates are not supported"),
}


def refuse(req: ResponsesRequest) -> None:
    for name, (asked, why) in REFUSED.items():
        if asked(getattr(req, name)):
            raise InvalidRequest(why, param=name)
