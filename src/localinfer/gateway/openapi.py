"""The gateway's OpenAPI 3.1 document: request bodies come from the same pydantic
models that validate them, so the schema cannot drift from what the routes accept."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..request_fields import (
    DROPPED,
    EXTENSIONS,
    EXTRA_PASSED,
    LOGIT_BIAS_MAX,
    TOP_LOGPROBS_MAX,
    Dialect,
)
from ..types import ChatRequest, ChatResponse, EmbeddingRequest
from .completions import CompletionRequest
from .generate import OllamaGenerateRequest
from .ollama_requests import (
    OllamaChatRequest,
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OllamaModelRequest,
)
from .pull import OllamaPullRequest
from .responses import ResponsesRequest, response_object, schema_overrides
from .wire import MAX_MODEL_NAME, dumps

REF = "#/components/schemas/{model}"
# The model-name rule of wire.check_model_name, for clients and fuzzers.
NAME_PATTERN = (r"(?!.*\.\.)(?!.*//)"
                r"([A-Za-z0-9]([A-Za-z0-9._:/@+\- ]*[A-Za-z0-9._:/@+\-])?"
                r"|/[A-Za-z0-9][A-Za-z0-9._:/@+\- ]*\.gguf)")
MODEL_NAME = {"type": "string", "maxLength": MAX_MODEL_NAME, "pattern": f"^{NAME_PATTERN}$"}
# Where the model may be left out: null or "" picks the best local model.
MODEL_OR_DEFAULT = {"anyOf": [{"type": "string", "maxLength": MAX_MODEL_NAME,
                               "pattern": f"^(|{NAME_PATTERN})$"}, {"type": "null"}]}
# One SSE event (OpenAPI 3.1: a text/event-stream schema describes each event).
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"data": {"type": "string"}, "event": {"type": "string"},
                            "id": {"type": "string"}}}

REQUEST_MODELS: list[tuple[type[BaseModel], Any]] = [
    (ChatRequest, "validation"), (EmbeddingRequest, "validation"),
    (OllamaChatRequest, "validation"), (OllamaEmbedRequest, "validation"),
    (OllamaEmbeddingsRequest, "validation"), (OllamaModelRequest, "validation"),
    (CompletionRequest, "validation"), (OllamaGenerateRequest, "validation"),
    (ResponsesRequest, "validation"), (OllamaPullRequest, "validation"),
    (ChatResponse, "serialization"),
]

OPENAI_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
}}}
OLLAMA_ERROR = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string"}}}
OPEN_OBJECT: dict[str, Any] = {"type": "object"}

# The request-field table (request_fields.py) in the schema: the request bodies of the
# routes it guards are closed (``additionalProperties: false``: any other field is a 400
# unsupported_field), and list what it passes on beyond the route's model and what it
# drops. Modelled properties keep their own (narrower) schema.
TABLE_ROUTES: dict[str, Dialect] = {
    "ChatRequest": "chat", "CompletionRequest": "completions",
    "OllamaChatRequest": "ollama", "OllamaGenerateRequest": "ollama",
    "OllamaOptions": "ollama_options", "ResponsesRequest": "responses",
}
_NULL = {"type": "null"}
# The chat fields the table passes on as they are, typed as it checks them.
PASSED: dict[str, dict[str, Any]] = {
    "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "logit_bias": {"anyOf": [_NULL, {"type": "object", "additionalProperties": {
        "type": "number", "minimum": -LOGIT_BIAS_MAX, "maximum": LOGIT_BIAS_MAX}}]},
    "logprobs": {"type": ["boolean", "null"]},
    "top_logprobs": {"anyOf": [_NULL, {"type": "integer", "minimum": 0,
                                       "maximum": TOP_LOGPROBS_MAX}]},
    "user": {"type": ["string", "null"]},
    "parallel_tool_calls": {"type": ["boolean", "null"]},
    "stream_options": {"anyOf": [_NULL, {"type": "object", "properties": {
        "include_usage": {"type": "boolean"}}}]},
    "reasoning_effort": {"type": ["string", "null"]},
}
DROPPED_FIELD: dict[str, Any] = {
    "description": "Accepted and dropped: it has no meaning here (docs/gateway.md, "
                   "request fields)"}


def _extension(name: str) -> dict[str, Any]:
    kind, low, high = EXTENSIONS[name]
    if kind is bool:
        return {"type": "boolean"}
    return {"type": "integer" if kind is int else "number", "minimum": low, "maximum": high}


def table_properties(dialect: Dialect, max_choices: int) -> dict[str, Any]:
    """What the field table accepts beyond a route's model, as JSON Schema properties."""
    out: dict[str, Any] = {}
    for name in sorted(EXTRA_PASSED[dialect]):
        if name in EXTENSIONS:
            out[name] = _extension(name)
        elif name == "n":
            out[name] = {"anyOf": [_NULL, {"type": "integer", "minimum": 1,
                                           "maximum": max_choices}]}
        else:
            out[name] = PASSED[name]
    for name in sorted(DROPPED[dialect]):
        out.setdefault(name, DROPPED_FIELD)
    return out

ERROR_STATUSES = {
    "400": "Malformed body, wrong types or a bad model name",
    "401": "Missing or wrong bearer token",
    "403": "Refused: Host, Origin, cross-site request, consent or sensitivity rules",
    "404": "Unknown model (the message lists the available ones)",
    "413": "Body larger than max_body_bytes",
    "502": "The backend failed",
    "503": "No backend can serve the request",
    "504": "The backend did not answer in time",
}
ERROR_GETS = {k: v for k, v in ERROR_STATUSES.items() if k in {"401", "403", "404", "503"}}
ERROR_GET_MODEL = {k: v for k, v in ERROR_STATUSES.items() if k in {"400", *ERROR_GETS}}
SERVED_HEADERS = {
    "x-localinfer-backend": {"description": "The backend that answered",
                             "schema": {"type": "string"}},
    "x-localinfer-tier": {"description": "Its tier: local, embedded, remote (none: the gateway)",
                          "schema": {"type": "string"}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _responses(ok: dict[str, Any], error: dict[str, Any],
               statuses: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "headers": SERVED_HEADERS,
                                   "content": ok}}
    for status, text in statuses.items():
        out[status] = {"description": text, "content": _json(error)}
    return out


def _post(summary: str, body: str, ok: dict[str, Any], error: dict[str, Any],
          tag: str) -> dict[str, Any]:
    return {"post": {"summary": summary, "tags": [tag],
                     "requestBody": {"required": True, "content": _json(_ref(body))},
                     "responses": _responses(ok, error, ERROR_STATUSES)}}


def _get(summary: str, ok: dict[str, Any], error: dict[str, Any], tag: str,
         statuses: dict[str, str] = ERROR_GETS, **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "tags": [tag],
                    "responses": _responses(ok, error, statuses), **extra}}


def _components(max_choices: int) -> dict[str, Any]:
    _, top = models_json_schema(REQUEST_MODELS, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    for name, dialect in TABLE_ROUTES.items():
        schemas[name]["properties"] = {**table_properties(dialect, max_choices),
                                       **schemas[name]["properties"]}
        schemas[name]["additionalProperties"] = False
    # What pydantic cannot say in JSON Schema: the model-name rule, where the model may
    # default, and that `input` is non-empty whether a string or a list.
    for name in ("ChatRequest", "EmbeddingRequest", "CompletionRequest", "ResponsesRequest"):
        schemas[name]["properties"]["model"] = MODEL_OR_DEFAULT
    for name in ("OllamaChatRequest", "OllamaEmbedRequest", "OllamaEmbeddingsRequest",
                 "OllamaGenerateRequest"):
        schemas[name]["properties"]["model"] = MODEL_NAME
    schemas["EmbeddingRequest"]["properties"]["input"] = {"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    # What the routes refuse (a 400 naming the field) is outside the schema, so a
    # client that follows it is never refused: fill-in-the-middle, several choices,
    # logprobs, token ids, raw prompts, images on the legacy routes.
    absent = {"type": "null"}
    completion = schemas["CompletionRequest"]["properties"]
    completion["prompt"] = {"anyOf": [{"type": "string"},
                                      {"type": "array", "items": {"type": "string"}}]}
    for name in ("suffix", "logprobs"):
        completion[name] = {"anyOf": [absent, {"const": ""}] if name == "suffix" else [absent]}
    for name in ("n", "best_of"):
        completion[name] = {"anyOf": [absent, {"const": 1}]}
    generate = schemas["OllamaGenerateRequest"]["properties"]
    generate["raw"] = generate["think"] = {"anyOf": [absent, {"const": False}]}
    for name in ("suffix", "template"):
        generate[name] = {"anyOf": [absent, {"const": ""}]}
    for name in ("images", "context"):
        generate[name] = {"anyOf": [absent, {"type": "array", "maxItems": 0}]}
    # Only the model's own size is accepted (nothing here is Matryoshka-trained).
    schemas["OllamaEmbedRequest"]["properties"].pop("dimensions", None)
    schemas["ResponsesRequest"]["properties"].update(schema_overrides())
    schemas["ResponsesRequest"]["required"] = ["input"]
    schemas["Response"] = response_object()
    # /api/pull takes catalog names only (URLs and ollama: targets are the CLI's).
    pull = schemas["OllamaPullRequest"]
    pull["properties"]["model"] = {**MODEL_NAME, "not": {"pattern": "^ollama:"}}
    pull["properties"].pop("name", None)
    pull["required"] = ["model"]
    show = schemas["OllamaModelRequest"]
    show["properties"]["model"] = MODEL_NAME
    show["required"] = ["model"]
    return schemas


def build_openapi(max_choices: int = 4) -> dict[str, Any]:
    """The document; ``max_choices``: the setting that bounds chat's ``n``."""
    model_list = {"type": "object", "required": ["object", "data"], "properties": {
        "object": {"const": "list"}, "data": {"type": "array", "items": OPEN_OBJECT}}}
    embeddings = {"type": "object", "required": ["object", "data", "model"], "properties": {
        "object": {"const": "list"}, "model": {"type": "string"},
        "data": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"},
            "embedding": {"anyOf": [{"type": "array", "items": {"type": "number"}},
                                    {"type": "string"}]}}}}}}
    chat_ok = {**_json(_ref("ChatResponse")),
               "text/event-stream": {"schema": SSE_EVENT}}
    ollama_chat_ok = {**_json(OPEN_OBJECT),
                      "application/x-ndjson": {"schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/v1/chat/completions": _post("Chat completion (stream: SSE)", "ChatRequest",
                                      chat_ok, OPENAI_ERROR, "openai"),
        "/v1/embeddings": _post("Embeddings", "EmbeddingRequest", _json(embeddings),
                                OPENAI_ERROR, "openai"),
        "/v1/models": _get("Every model across tiers; owned_by names the backend",
                           _json(model_list), OPENAI_ERROR, "openai"),
        "/v1/models/{model}": _get(
            "One model", _json(OPEN_OBJECT), OPENAI_ERROR, "openai", ERROR_GET_MODEL,
            parameters=[{"name": "model", "in": "path", "required": True,
                         "schema": MODEL_NAME}]),
        "/api/chat": _post("Ollama chat (stream: NDJSON, the default)", "OllamaChatRequest",
                           ollama_chat_ok, OLLAMA_ERROR, "ollama"),
        "/api/embed": _post("Ollama embeddings", "OllamaEmbedRequest", _json(OPEN_OBJECT),
                            OLLAMA_ERROR, "ollama"),
        "/api/embeddings": _post("Ollama embeddings (legacy)", "OllamaEmbeddingsRequest",
                                 _json(OPEN_OBJECT), OLLAMA_ERROR, "ollama"),
        "/api/show": _post("Ollama model details", "OllamaModelRequest", _json(OPEN_OBJECT),
                           OLLAMA_ERROR, "ollama"),
        "/api/tags": _get("Ollama model list", _json(OPEN_OBJECT), OLLAMA_ERROR, "ollama"),
        "/api/ps": _get("Ollama loaded models", _json(OPEN_OBJECT), OLLAMA_ERROR, "ollama"),
        "/api/version": _get("Ollama API level", _json(OPEN_OBJECT), OLLAMA_ERROR, "ollama"),
        "/v1/completions": _post(
            "Legacy text completion (the prompt is sent as a user message, so the chat "
            "template applies; stream: SSE text_completion chunks)", "CompletionRequest",
            {**_json(OPEN_OBJECT), "text/event-stream": {"schema": SSE_EVENT}},
            OPENAI_ERROR, "openai"),
        "/api/generate": _post(
            "Ollama generate (stream: NDJSON, the default; an empty prompt preloads)",
            "OllamaGenerateRequest", {**ollama_chat_ok}, OLLAMA_ERROR, "ollama"),
        "/v1/responses": _post(
            "Responses API (served through the chat path; stream: typed SSE events; "
            "previous_response_id: kept in memory for the gateway's life)",
            "ResponsesRequest", {**_json(_ref("Response")),
                                 "text/event-stream": {"schema": SSE_EVENT}},
            OPENAI_ERROR, "openai"),
        "/v1/responses/{response_id}": _get(
            "A response this gateway keeps (store: true)", _json(_ref("Response")), OPENAI_ERROR,
            "openai", ERROR_GETS, parameters=[{"name": "response_id", "in": "path",
                                               "required": True, "schema": {"type": "string"}}]),
        "/api/pull": _post(
            "Download a catalog model into the verified cache (stream: NDJSON status lines, "
            "the default); the first status is the disclosure (size, RAM fit)",
            "OllamaPullRequest", {**ollama_chat_ok}, OLLAMA_ERROR, "ollama"),
        "/api/delete": {"delete": {**_post("Remove a model from the cache (404 if not cached)",
                                          "OllamaPullRequest", _json(OPEN_OBJECT),
                                          OLLAMA_ERROR, "ollama")["post"]}},
        "/health": _get("Identifies localinfer's gateway (discovery skips it)",
                        _json({"type": "object", "required": ["status", "service"],
                               "properties": {"status": {"const": "ok"},
                                              "service": {"const": "localinfer"}}}),
                        OPENAI_ERROR, "gateway"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "localinfer gateway", "version": __version__,
                 "description": "OpenAI- and Ollama-compatible API over the best local tier."},
        "paths": paths,
        "components": {
            "schemas": _components(max_choices),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@functools.lru_cache(maxsize=8)
def openapi_json(max_choices: int = 4) -> bytes:
    """The document as /openapi.json serves it, built once per ``max_choices``: building
    it (pydantic's JSON Schema of every request model) takes ~50 ms, which every
    gateway start paid again."""
    return dumps(build_openapi(max_choices))

