"""OpenAI's Responses API, ``POST /v1/responses`` (Codex-style agents speak only this),
served through the chat path.

``input`` (a string, or items: messages with ``input_text``/``output_text`` parts,
``function_call`` and ``function_call_output`` items) and ``instructions`` become chat
messages; ``max_output_tokens``, ``temperature``, ``top_p``, function ``tools``,
``tool_choice`` and ``text.format`` map onto their chat twins, so the same honest-400
rules apply (honest.py). The answer is a ``response`` object whose output items are a
``message`` and/or ``function_call`` items; ``stream: true`` sends the typed SSE events
(``response.created`` … ``response.completed``, each with a ``sequence_number``).

``previous_response_id`` continues a conversation kept in memory for the gateway's life
(``ResponseStore``: bounded, oldest dropped first); an id not kept (never made, made with
``store: false``, or dropped) is a 400 ``previous_response_not_found``. What cannot be
honoured is refused with a 400 naming the field (``REFUSED``), never dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import LocalInferError
from ..types import ChatChunk, ChatRequest, ChatResponse, Usage, new_id
from .context import Gateway
from .errors import InvalidRequest, RouteNotFound, from_validation
from .honest import refuse_unsupported
from .streaming import ChunkStreamResponse, peek
from .wire import JSONBody, check_model_name, dumps, read_model, served_headers

# How many responses, and how many bytes of conversation, the gateway keeps for
# previous_response_id: enough for several agents' chats, bounded for a long-lived process.
MAX_STORED = 512
MAX_STORED_BYTES = 64 * 1024 * 1024


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


# -- input items → chat messages ---------------------------------------------------

ROLES = {"user", "system", "developer", "assistant"}
TEXT_PARTS = {"input_text", "output_text", "text"}


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of parts", param=where)
    pieces: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in TEXT_PARTS:
            raise InvalidRequest(
                f"{where}[{i}]: content part type {kind!r} is not supported: the models "
                "served read text (input_text) only", param=f"{where}[{i}].type")
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}[{i}].text must be a string", param=f"{where}[{i}].text")
        pieces.append(text)
    return "".join(pieces)


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key} must be a string", param=f"{where}.{key}")
    return value


def item_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input → chat messages. Consecutive ``function_call`` items become one
    assistant message with several tool calls, as chat templates expect."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if not isinstance(role, str) or role not in ROLES:
                raise InvalidRequest(f"{where}.role must be one of {sorted(ROLES)}",
                                     param=f"{where}.role")
            messages.append({"role": role, "content": _text(item.get("content"),
                                                            f"{where}.content")})
        elif kind == "function_call":
            call = {"id": _string(item, "call_id", where), "type": "function",
                    "function": {"name": _string(item, "name", where),
                                 "arguments": _string(item, "arguments", where)}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls") \
                    and not last["content"]:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", where),
                             "content": _text(item.get("output"), f"{where}.output")})
        else:
            raise InvalidRequest(f"{where}: input item type {kind!r} is not supported "
                                 "(send message, function_call and function_call_output "
                                 "items)", param=f"{where}.type")
    return messages


# -- tools and formats -------------------------------------------------------------


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise InvalidRequest(f"tools[{i}]: tool type {tool.get('type')!r} is not "
                                 "supported; only function tools", param=f"tools[{i}].type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}].name must be a non-empty string",
                                 param=f"tools[{i}].name")
        for key, types in (("description", str), ("parameters", dict), ("strict", bool)):
            if tool.get(key) is not None and not isinstance(tool[key], types):
                raise InvalidRequest(f"tools[{i}].{key} has the wrong type",
                                     param=f"tools[{i}].{key}")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict")
              if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if (isinstance(choice, dict) and choice.get("type") == "function"
            and isinstance(choice.get("name"), str)):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or "
                         "{'type': 'function', 'name': ...}", param="tool_choice")


# json_schema format fields: (key, accepted types, required), as /openapi.json says.
FORMAT_FIELDS: tuple[tuple[str, type | tuple[type, ...], bool], ...] = (
    ("name", str, True), ("schema", dict, True), ("strict", bool, False),
    ("description", str, False))
FORMAT_TYPE_NAMES = {"name": "a string", "schema": "an object", "strict": "a boolean",
                     "description": "a string"}


def chat_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict):
        # The fields the published schema types: a wrong type is the client's mistake.
        for key, types, required in FORMAT_FIELDS:
            value = fmt.get(key)
            if (value is None and not required) or isinstance(value, types):
                continue
            raise InvalidRequest(f"text.format.{key} must be {FORMAT_TYPE_NAMES[key]}",
                                 param=f"text.format.{key}")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest("text.format.type must be 'text', 'json_object' or 'json_schema'",
                         param="text.format")


# -- the store ---------------------------------------------------------------------


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


# -- output ------------------------------------------------------------------------


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [text_part(text)] if status == "completed" else []}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"type": "function_call", "id": new_id("fc"),
            "call_id": call.get("id") or new_id("call"), "name": fn.get("name") or "",
            "arguments": fn.get("arguments") or "", "status": status}


def usage_of(usage: Usage | None, fallback_output: int) -> dict[str, Any]:
    prompt = usage.prompt_tokens if usage else 0
    output = usage.completion_tokens if usage else fallback_output
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output}


def output_messages(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer's items as chat messages, for the next turn of the conversation."""
    text = "".join(p["text"] for item in output if item["type"] == "message"
                   for p in item["content"])
    calls = [{"id": it["call_id"], "type": "function",
              "function": {"name": it["name"], "arguments": it["arguments"]}}
             for it in output if it["type"] == "function_call"]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    return [message]


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
        incomplete = {"reason": "max_output_tokens"} if finish == "length" else None
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
    fields = {"max_tokens": req.max_output_tokens, "temperature": req.temperature,
              "top_p": req.top_p, "tool_choice": chat_tool_choice(req.tool_choice),
              "response_format": chat_format(req.text),
              "parallel_tool_calls": req.parallel_tool_calls,
              "seed": (req.model_extra or {}).get("seed")}
    if req.tools:
        fields["tools"] = chat_tools(req.tools)
    body.update({k: v for k, v in fields.items() if v is not None})
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None
    return Turn(req, chat, conversation)


def reply_output(reply: ChatResponse) -> list[dict[str, Any]]:
    message = reply.choices[0].message if reply.choices else None
    output: list[dict[str, Any]] = []
    if reply.text or not (message and message.tool_calls):
        output.append(message_item(new_id("msg"), reply.text))
    for call in (message.tool_calls or []) if message else []:
        output.append(call_item(call.model_dump(exclude_none=True)))
    return output


# -- streaming ---------------------------------------------------------------------


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


# -- the routes --------------------------------------------------------------------


async def create(gw: Gateway, store: ResponseStore, request: Request) -> Response:
    req = await read_model(request, ResponsesRequest, gw.settings.max_body_bytes)
    check_model_name(req.model)
    refuse(req)
    turn = translate(req, store)
    sensitive = gw.is_sensitive(request)
    await refuse_unsupported(gw, turn.chat, sensitive)

    def keep(response: dict[str, Any]) -> None:
        turn.keep(store, response)

    if req.stream:
        chunks = await gw.stream(turn.chat, sensitive)
        first = await peek(chunks, gw.timeout)
        backend, tier = (first.backend, first.tier) if first else (None, None)
        encoder = ResponseEventEncoder(turn, req.model or (first.model if first else ""), keep)
        return ChunkStreamResponse(first, chunks, encoder, served_headers(backend, tier),
                                   gw.timeout)
    reply = await gw.until_disconnect(request, lambda: gw.answer(turn.chat, sensitive))
    if reply is None:
        return Response(status_code=499)
    output = reply_output(reply)
    finish = reply.choices[0].finish_reason if reply.choices else None
    response = turn.response(req.model or reply.model, "completed", output,
                             usage_of(reply.usage, 0), finish)
    keep(response)
    return JSONBody(response, headers=served_headers(reply.backend, reply.tier))


def response_routes(gw: Gateway) -> list[Route]:
    store = ResponseStore()  # one per gateway: lives and dies with it

    async def post(request: Request) -> Response:
        return await create(gw, store, request)

    async def get(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        kept = store.get(response_id)
        if kept is None:
            raise RouteNotFound(f"response '{response_id[:80]}' is not kept by this gateway")
        return JSONBody(kept.response)

    return [Route("/v1/responses", post, methods=["POST"]),
            Route("/v1/responses/{response_id}", get, methods=["GET"])]


# -- the schema (openapi.py) ---------------------------------------------------------

_TEXT_PART = {"type": "object", "required": ["type", "text"], "properties": {
    "type": {"enum": sorted(TEXT_PARTS)}, "text": {"type": "string"}}}
_TEXT_OR_PARTS = {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]}
_NAME = {"type": "string", "minLength": 1}
INPUT_ITEM = {"anyOf": [
    {"type": "object", "required": ["role", "content"], "properties": {
        "type": {"const": "message"}, "role": {"enum": sorted(ROLES)},
        "content": _TEXT_OR_PARTS}},
    {"type": "object", "required": ["type", "call_id", "name", "arguments"], "properties": {
        "type": {"const": "function_call"}, "call_id": {"type": "string"}, "name": _NAME,
        "arguments": {"type": "string"}}},
    {"type": "object", "required": ["type", "call_id", "output"], "properties": {
        "type": {"const": "function_call_output"}, "call_id": {"type": "string"},
        "output": _TEXT_OR_PARTS}},
]}
_ABSENT = {"type": "null"}


def schema_overrides() -> dict[str, Any]:
    """Properties of ``ResponsesRequest``'s schema that pydantic cannot state: the item
    shapes, and what is refused (left out, so a client that follows the schema is never
    refused — forced tool calls are refused on the embedded tier)."""
    user_has_text = {"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": INPUT_ITEM,
         "contains": {"type": "object", "required": ["role"],
                      "properties": {"role": {"enum": ["user", "assistant", "developer"]}}}}]}
    out: dict[str, Any] = {
        "input": user_has_text,
        "tools": {"anyOf": [_ABSENT, {"type": "array", "items": {
            "type": "object", "required": ["type", "name"], "properties": {
                "type": {"const": "function"}, "name": _NAME,
                "description": {"type": "string"}, "parameters": {"type": "object"},
                "strict": {"type": ["boolean", "null"]}}}}]},
        "tool_choice": {"anyOf": [_ABSENT, {"enum": ["auto", "none", "required"]},
                                  {"type": "object", "required": ["type", "name"],
                                   "properties": {"type": {"const": "function"},
                                                  "name": {"type": "string"}}}],
                        "description": "'required' or a named function: 400 on the "
                                       "embedded tier"},
        "text": {"anyOf": [_ABSENT, {"type": "object", "properties": {"format": {"anyOf": [
            {"type": "null", "description": "null: plain text, as when absent"},
            {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object"]}}},
            {"type": "object", "required": ["type", "name", "schema"], "properties": {
                "type": {"const": "json_schema"}, "name": {"type": "string"},
                "schema": {"type": "object"}, "strict": {"type": ["boolean", "null"]}}}]}}}]},
        # An id this gateway returned earlier (kept in memory; otherwise a 400
        # previous_response_not_found): no schema can name the ids it happens to keep.
        "previous_response_id": {**_ABSENT, "description": "the id of a response this "
                                 "gateway returned and still keeps (400 "
                                 "previous_response_not_found otherwise)"},
        "background": {"anyOf": [_ABSENT, {"const": False}]},
        "include": {"anyOf": [_ABSENT, {"type": "array",
                                        "items": {"enum": sorted(HARMLESS_INCLUDES)}}]},
        "reasoning": {"anyOf": [_ABSENT, {"type": "object", "properties": {
            "effort": {"enum": [None, "none"]}, "summary": {"enum": [None, "none"]}}}]},
        "truncation": {"anyOf": [_ABSENT, {"const": "disabled"}]},
    }
    for name in ("top_logprobs", "max_tool_calls", "conversation", "prompt"):
        out[name] = _ABSENT
    return out
