"""Engine fields never reach an upstream, and one request cannot ask for unbounded
work (issue 26 §1). One table (localinfer/request_fields.py) decides on every route:
modelled, an allow-listed extension, dropped as documented, or a 400 naming the field.

Before: ``/v1/chat/completions`` forwarded ``n_probs``, ``n_discard``, ``id_slot``,
``grammar``, … to llama.cpp untouched (``n_probs: 100000`` grew llama-server to 21.9 GB);
``/v1/completions``, ``/api/chat`` and ``/v1/responses`` dropped them and answered 200;
an upstream 400 came back as ``502 every backend that could serve this failed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from localinfer.client import AsyncClient
from localinfer.errors import UsageError
from localinfer.gateway import create_app
from localinfer.settings import Settings
from tests.fake_backend import FakeBackend
from tests.gateway_harness import serve_gateway
from tests.support.servers import RunApp

pytestmark = pytest.mark.hostile

MESSAGES = [{"role": "user", "content": "hi"}]
ENGINE_FIELDS: list[tuple[str, Any]] = [
    ("n_probs", 100000), ("n_discard", 8), ("n_keep", -1), ("id_slot", 0), ("slot_id", 0),
    ("lora", [{"id": 0, "scale": 1}]), ("grammar", "root ::= \"x\""), ("samplers", ["top_k"]),
    ("json_schema", {"type": "object"}), ("ignore_eos", True), ("made_up_field", 1),
]


def route_body(route: str, field: str, value: Any) -> tuple[str, dict[str, Any]]:
    """A valid body for ``route`` with ``field`` added at the top level."""
    bodies: dict[str, dict[str, Any]] = {
        "/v1/chat/completions": {"model": "fake-model", "messages": MESSAGES},
        "/v1/completions": {"model": "fake-model", "prompt": "hi"},
        "/api/chat": {"model": "fake-model", "messages": MESSAGES, "stream": False},
        "/api/generate": {"model": "fake-model", "prompt": "hi", "stream": False},
        "/v1/responses": {"model": "fake-model", "input": "hi"},
    }
    return route, {**bodies[route], field: value}


@pytest.fixture
def served(run_app: RunApp, tmp_path: Path) -> tuple[str, FakeBackend]:
    backend = FakeBackend("fake-chat", tier="embedded", model_ids=("fake-model",))
    return serve_gateway(run_app, tmp_path, [backend]), backend


ROUTES = ["/v1/chat/completions", "/v1/completions", "/api/chat", "/api/generate",
          "/v1/responses"]


@pytest.mark.parametrize(("field", "value"), ENGINE_FIELDS)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("stream", [False, True])
def test_engine_fields_are_refused_on_every_route(served: tuple[str, FakeBackend], route: str,
                                                  field: str, value: Any, stream: bool) -> None:
    url, backend = served
    path, body = route_body(route, field, value)
    response = httpx.post(url + path, json={**body, "stream": stream}, timeout=30,
                          trust_env=False)
    assert response.status_code == 400, response.text
    assert field in response.text
    assert backend.calls == []  # nothing reached the backend


def test_ollama_options_table(served: tuple[str, FakeBackend]) -> None:
    url, backend = served
    # Ollama's runner options are dropped as documented; an engine field is refused.
    ok = httpx.post(url + "/api/chat", timeout=30, trust_env=False, json={
        "model": "fake-model", "messages": MESSAGES, "stream": False,
        "options": {"num_ctx": 4096, "num_gpu": 1, "temperature": 0.5}})
    assert ok.status_code == 200, ok.text
    bad = httpx.post(url + "/api/chat", timeout=30, trust_env=False, json={
        "model": "fake-model", "messages": MESSAGES, "stream": False,
        "options": {"n_probs": 100000}})
    assert bad.status_code == 400 and "options.n_probs" in bad.json()["error"]
    assert len(backend.calls) == 1


@pytest.mark.parametrize(("extra", "param"), [
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"n": 5}, "n"),
    ({"cache_prompt": "yes"}, "cache_prompt"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "enum": [f"v{i}" for i in range(20000)]}}}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "string", "description": "x" * 40000}}}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"enum": list(range(5000))}}}}}]},
     "tools[0].function.parameters"),
])
def test_bounds_before_any_upstream(served: tuple[str, FakeBackend], extra: dict[str, Any],
                                    param: str) -> None:
    url, backend = served
    response = httpx.post(url + "/v1/chat/completions", timeout=30, trust_env=False,
                          json={"model": "fake-model", "messages": MESSAGES, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert backend.calls == []


def test_nested_schema_is_refused(served: tuple[str, FakeBackend]) -> None:
    url, backend = served
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(100):
        schema = {"type": "array", "items": schema}
    response = httpx.post(url + "/v1/chat/completions", timeout=30, trust_env=False, json={
        "model": "fake-model", "messages": MESSAGES,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert response.status_code == 400 and "levels deep" in response.text
    assert backend.calls == []


def test_allow_listed_extensions_pass(served: tuple[str, FakeBackend]) -> None:
    url, _ = served
    response = httpx.post(url + "/v1/chat/completions", timeout=30, trust_env=False, json={
        "model": "fake-model", "messages": MESSAGES, "cache_prompt": False, "top_k": 40,
        "min_p": 0.05, "top_logprobs": 20, "logprobs": True, "n": 1, "store": True})
    assert response.status_code == 200, response.text


async def test_the_library_refuses_the_same(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False)
    backend = FakeBackend("fake-chat", tier="embedded", model_ids=("fake-model",))

    async def make() -> FakeBackend:
        return backend

    async with AsyncClient(settings, embedded=[make]) as client:
        with pytest.raises(UsageError, match="n_probs"):
            await client.chat("hi", n_probs=100000)
        stream = await client.chat("hi", stream=True, grammar="root ::= x")
        with pytest.raises(UsageError, match="grammar"):
            await anext(aiter(stream))
    assert backend.calls == []


def test_upstream_400_is_a_400_with_its_message(run_app: RunApp, tmp_path: Path,
                                                llama_server: str) -> None:
    """llama.cpp refuses a malformed request (a negative n_probs would be one, but the
    table stops those; a bad `response_format` type reaches it): the client sees 400 and
    llama.cpp's message, not 502."""
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded=False,
                        servers=[llama_server])
    gateway = run_app(create_app(settings, AsyncClient(settings)))
    for stream in (False, True):
        response = httpx.post(gateway + "/v1/chat/completions", timeout=120, trust_env=False,
                              json={"messages": MESSAGES, "max_tokens": 2, "stream": stream,
                                    "response_format": {"type": "no_such_format"}})
        assert response.status_code == 400, response.text
        assert "every backend" not in response.text
        assert response.json()["error"]["code"] == "upstream_rejected"


def test_answers_past_max_response_bytes_are_cut(run_app: RunApp, tmp_path: Path,
                                                 llama_server: str) -> None:
    """20 log-probabilities per token make ~2 kB a token: past max_response_bytes the
    upstream connection is closed and the client told, whole or streamed."""
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded=False,
                        servers=[llama_server], max_response_bytes=65536)
    gateway = run_app(create_app(settings, AsyncClient(settings)))
    body = {"messages": [{"role": "user", "content": "Tell a long story."}],
            "max_tokens": 400, "logprobs": True, "top_logprobs": 20}
    whole = httpx.post(gateway + "/v1/chat/completions", json=body, timeout=300,
                       trust_env=False)
    assert whole.status_code == 502 and "max_response_bytes" in whole.text, whole.text[:300]
    streamed = httpx.post(gateway + "/v1/chat/completions", json={**body, "stream": True},
                          timeout=300, trust_env=False)
    assert "max_response_bytes" in streamed.text[-2000:]
    assert len(streamed.content) < 2 * 65536


def test_dropped_fields_never_reach_the_backend_and_integral_floats_are_integers(
        run_app: RunApp, tmp_path: Path) -> None:
    """The documented drops (``store``, ``metadata``, …) are dropped, not forwarded; JSON's
    ``2.0`` is the integer 2 for ``n`` and ``top_k`` (as the routes' models and JSON Schema
    read it). Before: ``store`` went upstream and ``top_k: 40.0`` was a 400."""
    seen: list[dict[str, Any]] = []

    class Recording(FakeBackend):
        async def stream_chat(self, request, model):  # type: ignore[no-untyped-def]
            seen.append(request.model_dump(exclude_none=True))
            async for chunk in super().stream_chat(request, model):
                yield chunk

    url = serve_gateway(run_app, tmp_path, [Recording("rec", tier="embedded")])
    response = httpx.post(url + "/v1/chat/completions", timeout=30, trust_env=False, json={
        "model": "fake-model", "messages": MESSAGES, "store": True, "metadata": {"a": "b"},
        "service_tier": "auto", "n": 2.0, "top_k": 40.0, "top_logprobs": 3.0,
        "logprobs": True})
    assert response.status_code == 200, response.text
    sent = seen[0]
    assert not {"store", "metadata", "service_tier"} & set(sent), sent
    assert (sent["n"], sent["top_k"], sent["top_logprobs"]) == (2, 40, 3)
    assert all(type(sent[k]) is int for k in ("n", "top_k", "top_logprobs"))
    # Alone (nothing dropped), an integral float is still sent as the integer.
    response = httpx.post(url + "/v1/chat/completions", timeout=30, trust_env=False, json={
        "model": "fake-model", "messages": MESSAGES, "n": 2.0})
    assert response.status_code == 200, response.text
    assert type(seen[1]["n"]) is int


@pytest.mark.parametrize(("field", "value"), [
    ("user", {}), ("logprobs", "yes"), ("parallel_tool_calls", 1),
    ("presence_penalty", 3), ("logit_bias", {"5": 101}), ("logit_bias", [1, 2]),
    ("stream_options", {"include_usage": "yes"}), ("reasoning_effort", 5), ("n", 1.5),
])
def test_passed_chat_fields_are_typed(served: tuple[str, FakeBackend], field: str,
                                      value: Any) -> None:
    """The chat fields passed on as they are still have OpenAI's types and bounds (what
    /openapi.json publishes): before, ``user: {}`` went upstream."""
    url, backend = served
    response = httpx.post(url + "/v1/chat/completions", timeout=30, trust_env=False,
                          json={"model": "fake-model", "messages": MESSAGES, field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(field)
    assert backend.calls == []


def test_published_request_schemas_are_the_table() -> None:
    """/openapi.json says what the table accepts: the guarded request bodies are closed,
    and list the extensions, the passed and the dropped fields (a client that follows
    the schema is never refused with unsupported_field)."""
    from localinfer.gateway.openapi import build_openapi
    from localinfer.request_fields import DROPPED, EXTENSIONS

    schemas = build_openapi(max_choices=3)["components"]["schemas"]
    for name in ("ChatRequest", "CompletionRequest", "OllamaChatRequest",
                 "OllamaGenerateRequest", "OllamaOptions", "ResponsesRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    chat = schemas["ChatRequest"]["properties"]
    assert set(EXTENSIONS) | DROPPED["chat"] <= set(chat)
    assert chat["top_k"] == {"type": "integer", "minimum": 0, "maximum": 1000}
    assert {"type": "integer", "minimum": 1, "maximum": 3} in chat["n"]["anyOf"]
    assert not set(ENGINE_FIELDS_NAMES) & set(chat)
    assert set(DROPPED["ollama_options"]) <= set(schemas["OllamaOptions"]["properties"])
    assert "seed" in schemas["ResponsesRequest"]["properties"]


ENGINE_FIELDS_NAMES = [name for name, _ in ENGINE_FIELDS]
