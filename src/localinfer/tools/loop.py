"""The tool loop: ask the model, run the tools it calls, feed the results back, until it
answers in words or ``max_rounds`` tool rounds have passed.

The logic lives once, in ``_Loop`` (no I/O); ``run_with_tools`` (sync, over ``Client``)
and ``arun_with_tools`` (async, over ``AsyncClient``) only drive it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from ..errors import UsageError
from ..messages import MessageLike, build_messages
from ..types import ChatMessage, ChatResponse, ToolCall, ToolCallRecord, ToolRun
from .tool import Tool, run_python

DEFAULT_MAX_ROUNDS = 4
T = TypeVar("T")


class AsyncChatClient(Protocol):
    """What the loop needs of ``localinfer.AsyncClient`` (client.py runs this loop, so
    the loop names the shape rather than importing the client)."""

    async def chat(self, prompt: str | None = None, *, stream: Literal[False],
                   **options: Any) -> ChatResponse: ...


class ChatClient(Protocol):
    """What the sync form needs of ``localinfer.Client``."""

    @property
    def aio(self) -> AsyncChatClient: ...

    def run(self, fn: Callable[[], Awaitable[T]]) -> T: ...


@dataclass
class ToolReply:
    """The model's final reply, with every tool call and result along the way."""

    reply: ChatResponse
    calls: list[ToolCallRecord] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)  # the whole conversation
    rounds: int = 0
    exhausted: bool = False  # stopped at max_rounds with the model still calling tools

    @property
    def text(self) -> str:
        return self.reply.text

    @property
    def backend(self) -> str | None:
        return self.reply.backend

    @property
    def tier(self) -> str | None:
        return self.reply.tier


class _Loop:
    def __init__(self, prompt: str | None, messages: Sequence[MessageLike] | None,
                 system: str | None, tools: Sequence[Mapping[str, Any]],
                 max_rounds: int) -> None:
        if max_rounds < 1:
            raise UsageError("max_rounds must be at least 1")
        built = build_messages(prompt, messages, system)
        if not built:
            raise UsageError("nothing to send: give a prompt or messages")
        self.messages = built
        if not tools:
            raise UsageError("no tools given")
        self.schemas = [dict(t) for t in tools]
        # Only Tool objects run here; a call to a plain tool dict goes back to the caller.
        self.tools = {t.name: t for t in tools if isinstance(t, Tool)}
        self.handed_back = False
        self.known_plain = {str(t.get("function", {}).get("name", "")) for t in tools
                            if not isinstance(t, Tool)}
        self.max_rounds = max_rounds
        self.rounds = 0
        self.calls: list[ToolCallRecord] = []

    def request(self, options: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = dict(options)
        kwargs["messages"] = list(self.messages)
        if self.rounds < self.max_rounds:
            kwargs["tools"] = list(self.schemas)
        else:  # the last word: no tools offered, so the model has to answer
            kwargs.pop("tool_choice", None)
        return kwargs

    def take(self, reply: ChatResponse) -> list[ToolCall]:
        message = reply.choices[0].message if reply.choices else None
        calls = list(message.tool_calls or []) if message is not None else []
        if not calls or self.rounds >= self.max_rounds:
            return []
        if any((c.function.name or "") in self.known_plain for c in calls):
            self.handed_back = True  # the caller executes those: hand the reply back
            return []
        self.rounds += 1
        # A call without an id gets one (a copy: the reply itself stays as it came).
        calls = [call if call.id else call.model_copy(update={"id": f"call_{self.rounds}_{i}"})
                 for i, call in enumerate(calls)]
        assert message is not None
        # content "" rather than null: some chat templates read it unconditionally.
        self.messages.append(ChatMessage(role="assistant", content=message.content or "",
                                         tool_calls=calls))
        return calls

    def prepare(self, call: ToolCall) -> tuple[Tool | None, dict[str, Any] | str]:
        """The tool and its parsed arguments, or None and the error text for the model."""
        name = call.function.name or ""
        tool = self.tools.get(name)
        if tool is None:
            return None, f"error: no tool named '{name}'; available: {', '.join(self.tools)}"
        raw = call.function.arguments or "{}"
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            return None, f"error: the arguments are not valid JSON ({exc.msg})"
        if not isinstance(arguments, dict):
            return None, "error: the arguments must be a JSON object"
        return tool, arguments

    def answer(self, call: ToolCall, result: str, ok: bool, seconds: float) -> None:
        self.calls.append(ToolCallRecord(
            id=call.id or "", name=call.function.name or "",
            arguments=call.function.arguments or "", result=result, ok=ok,
            seconds=round(seconds, 4), round=self.rounds))
        self.messages.append(ChatMessage(role="tool", tool_call_id=call.id, content=result))

    def finish(self, reply: ChatResponse) -> ToolReply:
        message = reply.choices[0].message if reply.choices else None
        exhausted = bool(message is not None and message.tool_calls) and not self.handed_back
        if message is not None:
            self.messages.append(message)
        reply.with_tool_run(ToolRun(calls=self.calls, messages=self.messages,
                                    rounds=self.rounds, exhausted=exhausted,
                                    handed_back=self.handed_back))
        return ToolReply(reply=reply, calls=self.calls, messages=self.messages,
                         rounds=self.rounds, exhausted=exhausted)


def _failed(exc: Exception) -> str:
    return f"error: {type(exc).__name__}: {exc}"


def run_with_tools(client: ChatClient, prompt: str | None = None, *,
                   messages: Sequence[MessageLike] | None = None, system: str | None = None,
                   tools: Sequence[Mapping[str, Any]] = (run_python,),
                   max_rounds: int = DEFAULT_MAX_ROUNDS, **options: Any) -> ToolReply:
    """``client.chat`` that executes the model's tool calls (``run_python`` in the sandbox
    by default) and feeds the results back, at most ``max_rounds`` times. Other keyword
    arguments (``model``, ``sensitive``, ``max_tokens``, …) go to every ``chat`` call."""
    # One loop, written once: the sync form runs the async one on the client's loop.
    return client.run(lambda: arun_with_tools(client.aio, prompt, messages=messages,
                                              system=system, tools=tools,
                                              max_rounds=max_rounds, **options))


async def arun_with_tools(client: AsyncChatClient, prompt: str | None = None, *,
                          messages: Sequence[MessageLike] | None = None,
                          system: str | None = None,
                          tools: Sequence[Mapping[str, Any]] = (run_python,),
                          max_rounds: int = DEFAULT_MAX_ROUNDS, **options: Any) -> ToolReply:
    """The async twin of :func:`run_with_tools`."""
    loop = _Loop(prompt, messages, system, tools, max_rounds)
    while True:
        reply = await client.chat(stream=False, **loop.request(options))
        assert isinstance(reply, ChatResponse)
        calls = loop.take(reply)
        if not calls:
            return loop.finish(reply)
        for call in calls:
            started = time.monotonic()
            tool, arguments = loop.prepare(call)
            if tool is None:
                loop.answer(call, str(arguments), False, 0.0)
                continue
            assert isinstance(arguments, dict)
            try:
                result, ok = await tool.acall(arguments), True
            except Exception as exc:
                result, ok = _failed(exc), False
            loop.answer(call, result, ok, time.monotonic() - started)
