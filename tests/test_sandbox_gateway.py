"""The gateway executes tools for an HTTP client only when it opts in with
``x-localinfer-tools: run_python``; otherwise tool calls go back unexecuted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_harness import serve_gateway
from tests.support.scripted import ToolCallingBackend, code_args

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "2**10?"}]}


def backend() -> ToolCallingBackend:
    return ToolCallingBackend([("tools", [("run_python", code_args("print(2 ** 10)"))]),
                               ("text", "It is 1024.")])


@pytest.mark.slow
def test_opted_in_tool_calls_run_in_the_sandbox(run_app: Any, tmp_path: Path) -> None:
    pytest.importorskip("wasmtime")
    fake = backend()
    base = serve_gateway(run_app, tmp_path, [fake])
    r = httpx.post(base + "/v1/chat/completions", json=BODY, timeout=120,
                   headers={"x-localinfer-tools": "run_python", "x-localinfer-sensitive": "1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "It is 1024."
    assert body["choices"][0]["finish_reason"] == "stop"
    (call,) = body["localinfer_tool_calls"]
    assert call["name"] == "run_python" and json.loads(call["result"])["stdout"] == "1024\n"
    assert r.headers["x-localinfer-tier"] == "embedded"
    assert r.headers["x-localinfer-tool-rounds"] == "1"
    assert fake.requests[0].tools and fake.requests[0].tools[0]["function"]["name"] == "run_python"


def test_without_the_header_tool_calls_go_back_unexecuted(run_app: Any, tmp_path: Path) -> None:
    fake = backend()
    base = serve_gateway(run_app, tmp_path, [fake])
    body = {**BODY, "tools": [{"type": "function", "function": {
        "name": "run_python", "parameters": {"type": "object"}}}]}
    r = httpx.post(base + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "run_python"
    assert "localinfer_tool_calls" not in r.json()
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("headers", "extra", "status", "needle"), [
    ({"x-localinfer-tools": "rm_rf"}, {}, 400, "unknown tool"),
    ({"x-localinfer-tools": "run_python"}, {"stream": True}, 400, "stream"),
    ({"x-localinfer-tools": "run_python"},
     {"tools": [{"type": "function", "function": {"name": "x"}}]}, 400, "cannot be combined"),
    ({"x-localinfer-tools": "run_python", "origin": "http://evil.example"}, {}, 403, ""),
    # The branch takes the chat route's body and field checks, as any chat request.
    ({"x-localinfer-tools": "run_python"}, {"n_probs": 5}, 400, "n_probs"),
    ({"x-localinfer-tools": "run_python"}, {"temperature": 7}, 400, "temperature"),
])
def test_refusals(run_app: Any, tmp_path: Path, headers: dict[str, str], extra: dict[str, Any],
                  status: int, needle: str) -> None:
    fake = backend()
    base = serve_gateway(run_app, tmp_path, [fake])
    r = httpx.post(base + "/v1/chat/completions", json={**BODY, **extra}, headers=headers,
                   timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert fake.requests == []
