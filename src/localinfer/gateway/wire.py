"""Bytes in and out: capped body reads, JSON parsing into models, served-by headers.

orjson parses and serializes plain dicts (several times faster than ``json`` on the
chat-sized bodies the benchmark sends); pydantic-core serializes our models directly.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson
import pydantic_core
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from .errors import InvalidRequest, PayloadTooLarge, from_validation

M = TypeVar("M", bound=BaseModel)

BACKEND_HEADER = "x-localinfer-backend"
TIER_HEADER = "x-localinfer-tier"
# Served by no backend (model lists, health, refusals).
NO_BACKEND = "gateway"
NO_TIER = "none"

MAX_MODEL_NAME = 256
# Model ids as servers spell them: `llama3.1:8b`, `org/model-GGUF`, `x.Q4_K_M.gguf`, `a@b`,
# and GPT4All's `Llama 3 8B Instruct` (inner spaces); an absolute `.gguf` path is the name
# llama-server lists a model under (`/models/x.gguf`, kept as an alias): a lookup key only,
# never opened by the gateway.
_MODEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:/@+\- ]*[A-Za-z0-9._:/@+\-])?"
                         r"|/[A-Za-z0-9][A-Za-z0-9._:/@+\- ]*\.gguf")
_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]")


def dumps(value: Any) -> bytes:
    """JSON for dicts and models alike (models drop their excluded and None fields)."""
    try:
        if isinstance(value, BaseModel):
            return pydantic_core.to_json(value, exclude_none=True)
        return orjson.dumps(value)
    except (TypeError, ValueError, pydantic_core.PydanticSerializationError):
        # What the fast paths refuse (integers past 64 bits, lone surrogates echoed
        # from a request) the standard library still writes, escaped.
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="python", exclude_none=True)
        return json.dumps(value, default=str).encode()


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def served_headers(backend: str | None, tier: str | None) -> dict[str, str]:
    return {BACKEND_HEADER: header_value(backend or NO_BACKEND),
            TIER_HEADER: header_value(tier or NO_TIER)}


def header_value(text: str) -> str:
    # Backend names come from discovery (server answers); never let them split headers.
    if text.isascii() and text.isprintable():
        return text[:200]
    return _HEADER_UNSAFE.sub("?", text)[:200]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) past ``limit`` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of "
                              f"{limit} bytes (LOCALINFER_MAX_BODY_BYTES)")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes "
                                  "(LOCALINFER_MAX_BODY_BYTES)")
        parts.append(part)
    return b"".join(parts)


async def read_model(request: Request, model: type[M], limit: int) -> M:
    """The body parsed straight from JSON into ``model``, strictly: JSON types must match
    (``"stream": 0`` is not a boolean), as OpenAI's own API insists."""
    return parse_model(await read_body(request, limit), model)


def parse_model(body: bytes, model: type[M]) -> M:
    """``read_model`` for a body already read (a route that inspects it first)."""
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        if not all(_integral_float(e) for e in exc.errors()):
            raise from_validation(exc) from None
    # JSON has one number type: 5.0 is as much an integer as 5 (JSON Schema agrees).
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _integral_float(error: Any) -> bool:
    value = error.get("input")
    return (error.get("type") == "int_type" and isinstance(value, float)
            and value.is_integer())


def check_model_name(name: str | None, *, required: bool = False) -> str | None:
    """Refuse names that could be path tricks, control characters or absurdly long."""
    if name is None or name == "":
        if required:
            raise InvalidRequest("`model` is required", param="model")
        return name
    if len(name) > MAX_MODEL_NAME:
        raise InvalidRequest(f"model name is longer than {MAX_MODEL_NAME} characters",
                             param="model")
    if not _MODEL_NAME.fullmatch(name) or ".." in name or "//" in name:
        shown = name.encode("unicode_escape").decode("ascii")[:80]
        raise InvalidRequest(
            f"invalid model name '{shown}': use letters, digits, spaces and . _ : / @ + - "
            "(no '..', no leading '/' or '.' except a .gguf path a server lists)", param="model")
    return name
