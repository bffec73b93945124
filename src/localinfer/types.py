"""OpenAI-shaped request and response models, plus what discovery reports.

Requests keep unknown fields (``extra="allow"``) so options a backend understands
but we do not model are passed through untouched. Responses carry ``backend`` and
``tier`` as excluded fields: visible to the library caller, never serialized onto
the wire (the gateway sends them as headers instead).

Replies (chunks, responses, their choices, deltas and usage) are immutable: a reply
parsed from a server may keep that server's bytes to be sent on untouched
(backends/passthrough.py), and a reply that could change after parsing could disagree
with them. A changed reply is a copy (``model_copy(update=...)``), which keeps no bytes.
Only where it came from (``served_by``: backend, tier, host; ``with_tool_run``), never
on the wire, is set after parsing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Tier = Literal["local", "embedded", "remote"]
Role = Literal["system", "user", "assistant", "tool", "developer"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Frozen(BaseModel):
    """A part of a reply: immutable (see the module's docstring)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ToolCallFunction(_Frozen):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Frozen):
    id: str | None = None
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Frozen):
    """One message: immutable, as it may sit in a reply that keeps its server's bytes
    (messages in requests are values too: build a new one to change it)."""

    role: Role
    # Content can be a string or a list of typed parts (OpenAI's multimodal shape).
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ChatRequest(_Open):
    """The body of ``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    # The field current OpenAI clients send instead of max_tokens (langchain-openai 1.x
    # sends only this one); it means the same limit here.
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _one_token_limit(self) -> ChatRequest:
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self

    def wire(self, *, model: str, stream: bool) -> dict[str, Any]:
        """The JSON body to send upstream: unset fields dropped, model and stream fixed."""
        body = self.model_dump(exclude_none=True)
        body["model"] = model
        body["stream"] = stream
        return body


class Usage(_Frozen):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Choice(_Frozen):
    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


class _Served(_Frozen):
    # Which backend and tier answered; excluded from JSON so wire shapes stay OpenAI's.
    backend: str | None = Field(default=None, exclude=True)
    tier: Tier | None = Field(default=None, exclude=True)
    # The inference host that served it (hosts/); None for the embedded engine and remote.
    host: str | None = Field(default=None, exclude=True)

    def served_by(self, backend: str | None = None, tier: Tier | None = None, *,
                  host: str | None = None) -> Self:
        """Say where this reply came from (what is given; None keeps what it says): the
        one change a parsed reply takes, as none of it is serialised (its kept server
        bytes stay true). Returns the reply."""
        for name, value in (("backend", backend), ("tier", tier), ("host", host)):
            if value is not None:
                _set(self, name, value)
        return self


def _set(reply: BaseModel, name: str, value: Any) -> None:
    object.__setattr__(reply, name, value)  # past frozen, for origin fields only


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass
class ToolCallRecord:
    """One tool call the model made, executed by localinfer, and what it got back."""

    id: str
    name: str
    arguments: str  # as the model wrote them (JSON text)
    result: str  # what the model was given
    ok: bool  # False: unknown tool, bad arguments, or the tool raised
    seconds: float
    round: int


@dataclass
class ToolRun:
    """The tool rounds behind an answer: every call and result, and the whole conversation."""

    calls: list[ToolCallRecord] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)
    rounds: int = 0
    exhausted: bool = False  # stopped at max_rounds with the model still calling tools
    handed_back: bool = False  # the model called a tool localinfer cannot execute


class ChatResponse(_Served):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    # Set when chat(tools=[...]) executed tool calls on the way to this answer.
    tool_run: ToolRun | None = Field(default=None, exclude=True)

    def with_tool_run(self, run: ToolRun) -> ChatResponse:
        """The tool rounds behind this answer (not serialised either). Returns the reply."""
        _set(self, "tool_run", run)
        return self

    @property
    def text(self) -> str:
        content = self.choices[0].message.content if self.choices else None
        return content if isinstance(content, str) else ""


class Delta(_Frozen):
    role: Role | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(_Frozen):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatChunk(_Served):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None

    @property
    def text(self) -> str:
        return "".join(c.delta.content or "" for c in self.choices)


# What every chat stream is: an async generator, so a caller can always ``aclose()`` it
# to stop generation (closing is how cancellation reaches a backend).
ChatStream = AsyncGenerator[ChatChunk, None]


class EmbeddingRequest(_Open):
    model: str | None = None
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] | None = None

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float]


class EmbeddingResponse(_Served):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage | None = None

    @property
    def vectors(self) -> list[list[float]]:
        return [d.embedding for d in sorted(self.data, key=lambda d: d.index)]


Capability = Literal["chat", "embeddings"]


class ModelInfo(BaseModel):
    """One model a backend can serve."""

    id: str
    backend: str
    tier: Tier
    capabilities: list[Capability] = Field(default_factory=lambda: list[Capability](["chat"]))
    loaded: bool | None = None
    aliases: list[str] = Field(default_factory=list)
    # Whether the backend passes `tools` to this model (llama-server: its chat template's
    # caps); None where the backend does not tell.
    tools: bool | None = None
    # Tokens one request may span, prompt and answer (llama-server: a slot's n_ctx; vLLM:
    # max_model_len); None where the server does not say.
    context: int | None = None

    def answers_to(self, name: str) -> bool:
        return name == self.id or name in self.aliases


class ServerInfo(BaseModel):
    """A local (or configured) inference server that discovery found."""

    kind: str
    base_url: str
    api_base: str = Field(description="Root of the server's OpenAI-compatible API, e.g. .../v1")
    version: str | None = None
    models: list[ModelInfo] = Field(default_factory=list)
    latency_ms: float = 0.0

    @property
    def name(self) -> str:
        host = self.base_url.split("://", 1)[-1].rstrip("/")
        return f"{self.kind}@{host}"
