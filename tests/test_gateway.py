"""The gateway through real clients on loopback: the official ``openai`` SDK, the
``ollama`` client, and the seed document's ``fetch`` snippet run by node."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from localinfer.types import ModelInfo
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import RunApp, default_backends, serve_gateway


@pytest.fixture
def backends() -> list[FakeBackend]:
    return default_backends()  # type: ignore[return-value]


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path, backends: list[FakeBackend]) -> str:
    return serve_gateway(run_app, tmp_path, backends)  # type: ignore[arg-type]


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0)


def test_openai_sdk_lists_models_with_their_backend(gateway: str) -> None:
    models = {m.id: m for m in sdk(gateway).models.list()}
    assert set(models) == {"fake-model", "fake-embedder"}
    assert models["fake-model"].owned_by == "fake-chat"
    assert sdk(gateway).models.retrieve("fake-embedder").owned_by == "fake-embed"


def test_openai_sdk_chat_names_backend_and_tier(gateway: str,
                                                backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Summary", ": short."]))
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": "Summarize this document."}])
    reply = raw.parse()
    assert reply.choices[0].message.content == "Summary: short."
    assert reply.choices[0].finish_reason == "stop"
    assert raw.headers["x-localinfer-backend"] == "fake-chat"
    assert raw.headers["x-localinfer-tier"] == "embedded"
    assert backends[0].calls == [("chat", "fake-model")]


def test_openai_sdk_stream(gateway: str, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["one", " two", " three"]))
    with sdk(gateway).chat.completions.with_streaming_response.create(
            messages=[{"role": "user", "content": "count"}], model="fake-model",
            stream=True) as response:
        assert response.headers["x-localinfer-tier"] == "embedded"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_sdk_embeddings_default_base64(gateway: str) -> None:
    # The SDK asks for base64 unless told otherwise and decodes it itself.
    result = sdk(gateway).embeddings.create(model="fake-embedder", input=["a", "bbb"])
    assert [d.embedding for d in result.data] == [[1.0, 1.0], [3.0, 1.0]]
    floats = sdk(gateway).embeddings.create(model="fake-embedder", input="xy",
                                            encoding_format="float")
    assert floats.data[0].embedding == [2.0, 1.0]


def test_base64_embeddings_are_little_endian_float32(gateway: str) -> None:
    body = httpx.post(gateway + "/v1/embeddings", json={
        "model": "fake-embedder", "input": "abcd", "encoding_format": "base64"}).json()
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (4.0, 1.0)


def test_openai_sdk_unknown_model_is_404_listing_models(gateway: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway).chat.completions.create(
            model="llama3.1", messages=[{"role": "user", "content": "hi"}])
    err = info.value.body
    assert isinstance(err, dict)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "fake-model" in err["message"]


def test_tools_and_response_format_pass_through(run_app: RunApp, tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    class Recording(FakeBackend):
        async def stream_chat(self, request, model):  # type: ignore[no-untyped-def]
            seen.append(request.model_dump(exclude_none=True))
            async for chunk in super().stream_chat(request, model):
                yield chunk

    url = serve_gateway(run_app, tmp_path, [Recording("rec", tier="embedded")])
    tools: list[Any] = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    sdk(url).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], tools=tools,
        tool_choice="auto", response_format={"type": "json_object"})
    assert seen[0]["tools"] == tools
    assert seen[0]["tool_choice"] == "auto"
    assert seen[0]["response_format"] == {"type": "json_object"}


def test_ollama_client_unchanged(gateway: str, backends: list[FakeBackend]) -> None:
    client = ollama.Client(host=gateway)
    names = [m.model for m in client.list().models]
    assert names == ["fake-model", "fake-embedder"]
    assert client.show("fake-model").capabilities == ["completion"]

    backends[0].enqueue(Script(chunks=["Hel", "lo"]))
    reply = client.chat(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "Hello" and reply.done and reply.done_reason == "stop"

    backends[0].enqueue(Script(chunks=["a", "b", "c"]))
    parts = list(client.chat(model="fake-model", stream=True,
                             messages=[{"role": "user", "content": "hi"}],
                             options={"temperature": 0.1, "num_predict": 5}))
    assert "".join(p.message.content or "" for p in parts) == "abc"
    assert [p.done for p in parts] == [False, False, False, True]
    assert parts[-1].eval_count == 3

    vectors = client.embed(model="fake-embedder", input=["a", "bb"]).embeddings
    assert [list(v) for v in vectors] == [[1.0, 1.0], [2.0, 1.0]]
    assert client.embeddings(model="fake-embedder", prompt="abc").embedding == [3.0, 1.0]
    assert httpx.get(gateway + "/api/version").json()["version"]


def test_ollama_client_unknown_model_raises_response_error(gateway: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=gateway).chat(model="nope:latest",
                                          messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404
    assert "fake-model" in info.value.error


def test_ollama_options_and_tool_calls_translate(run_app: RunApp, tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    class ToolCaller(FakeBackend):
        async def stream_chat(self, request, model):  # type: ignore[no-untyped-def]
            from localinfer.types import ChatChunk, ChunkChoice, Delta

            seen.append(request.model_dump(exclude_none=True))
            call = {"index": 0, "id": "c1", "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": '}}
            more = {"index": 0, "function": {"arguments": '"Oslo"}'}}
            for delta in (call, more):
                yield ChatChunk(model=model, choices=[
                    ChunkChoice(delta=Delta(tool_calls=[delta]))])
            yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="tool_calls")])

    url = serve_gateway(run_app, tmp_path, [ToolCaller(
        "tools", tier="embedded", models=[ModelInfo(id="m", backend="tools", tier="embedded")])])
    parts = list(ollama.Client(host=url).chat(
        model="m", stream=True, format="json", options={"num_predict": 7, "seed": 3,
                                                         "num_ctx": 4096},
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "weather"}}]))
    final = parts[-1]
    assert final.done
    assert final.message.tool_calls is not None
    assert final.message.tool_calls[0].function.name == "weather"
    assert final.message.tool_calls[0].function.arguments == {"city": "Oslo"}
    assert seen[0]["max_tokens"] == 7 and seen[0]["seed"] == 3
    assert seen[0]["response_format"] == {"type": "json_object"}
    assert "num_ctx" not in seen[0]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_seed_fetch_snippet_runs_in_node(gateway: str) -> None:
    """The seed document's snippet, with only the port changed."""
    script = f"""
const model = 'fake-model';
const response = await fetch('{gateway}/v1/chat/completions', {{
  method: 'POST',
  headers: {{ 'Content-Type': 'application/json' }},
  body: JSON.stringify({{
    model,
    messages: [{{ role: 'user', content: 'Summarize this document.' }}]
  }})
}});
const body = await response.json();
console.log(JSON.stringify({{status: response.status,
  tier: response.headers.get('x-localinfer-tier'), body}}));
"""
    result = subprocess.run(["node", "--input-type=module", "-e", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == 200 and out["tier"] == "embedded"
    assert out["body"]["choices"][0]["message"]["content"] == "hello world"


def test_health_identifies_the_gateway(gateway: str) -> None:
    response = httpx.get(gateway + "/health")
    assert response.headers["x-localinfer-service"] == "gateway"
    assert response.json()["service"] == "localinfer"
    assert response.json()["status"] == "ok"


def test_discovery_skips_the_gateway(gateway: str, tmp_path: Path) -> None:
    """Discovery pointed at the gateway must not list it (it would route to itself)."""
    import asyncio

    from localinfer.client import AsyncClient
    from localinfer.settings import Settings

    async def servers() -> list[str]:
        async with AsyncClient(Settings(home=tmp_path / "d", scan_default_ports=False,
                                        servers=[gateway], embedded=False)) as client:
            return [s.kind for s in await client.servers(refresh=True)]

    assert asyncio.run(servers()) == []


def test_every_response_names_backend_and_tier(gateway: str) -> None:
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/models", None), ("GET", "/nope", None),
        ("POST", "/v1/chat/completions", {"messages": []}),
        ("GET", "/openapi.json", None), ("GET", "/api/version", None)]
    for method, path, body in requests:
        response = httpx.request(method, gateway + path, json=body)
        assert "x-localinfer-backend" in response.headers, path
        assert "x-localinfer-tier" in response.headers, path


def test_serve_refuses_public_bind_without_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from localinfer.cli.main import main

    monkeypatch.setenv("LOCALINFER_HOME", str(tmp_path))
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "token" in err


def test_serve_command_runs_a_gateway(tmp_path: Path) -> None:
    """`localinfer serve` as a user runs it: a real process, a free port, /health."""
    import os
    import sys

    env = {**os.environ, "LOCALINFER_HOME": str(tmp_path), "LOCALINFER_EMBEDDED": "off",
           "LOCALINFER_SCAN_DEFAULT_PORTS": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "localinfer.cli.main", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/health", timeout=10).json()["service"] == "localinfer"
        reply = httpx.post(url + "/v1/chat/completions", timeout=30,
                           json={"messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "no_backend"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_on_a_taken_port_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from localinfer.cli.main import main

    monkeypatch.setenv("LOCALINFER_HOME", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("localinfer: error: cannot listen on 127.0.0.1:") and "\n" not in err
