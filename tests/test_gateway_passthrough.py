"""The gateway in front of a real OpenAI-compatible server on loopback, through the one
HTTP client (``http.make_client``): the server's bytes passed on untouched when nothing needs
translating, re-serialised when something does, every request checked and recorded, and
upstream failures mapped as before (4xx/5xx JSON, an error event mid-stream).

One upstream and one gateway for the whole module (uvicorn start-up is most of the cost);
the upstream's behaviour is chosen by the model name each test asks for.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localinfer.client import AsyncClient
from localinfer.errors import EgressBlocked
from localinfer.gateway import create_app
from localinfer.http import EgressPolicy, EgressRecord, make_client
from localinfer.settings import Settings
from tests.fakes.serve import AppServer

FULL = {"id": "chatcmpl-up", "object": "chat.completion", "created": 1700000000,
        "model": "full", "system_fingerprint": None,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "from upstream"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
# What a sparse server leaves out (no id, no finish_reason): the gateway fills it in.
SPARSE = {"model": "sparse", "choices": [{"message": {"role": "assistant", "content": "hi"}}]}
CONTEXT_ERROR = {"error": {"code": 400, "type": "exceed_context_size_error",
                           "message": "the request exceeds the available context size",
                           "n_prompt_tokens": 9000, "n_ctx": 4096}}
# Failing models live on servers of their own: a failure puts its host in cooldown.
MODELS = (("full", "sparse", "ctx", "usage"), ("cut",), ("boom",))


def sse_chunk(model: str, i: int, **extra: Any) -> bytes:
    data = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "choices": [{"index": 0, "delta": {"content": f"t{i} "},
                                         "finish_reason": None}], **extra}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class Server:
    """A raw ASGI OpenAI-compatible server; ``bodies`` keeps every chat body it got."""

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = models
        self.bodies: list[dict[str, Any]] = []
        # "cut" dies only once the test has read its chunks: data and the cut arriving
        # in one read would drop the data (aiohttp raises before returning it).
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/models":
            await respond(send, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "t"} for m in self.models]})
            return
        request = json.loads(body)
        self.bodies.append(request)
        model = request["model"]
        if model == "ctx":
            await respond(send, 400, CONTEXT_ERROR)
        elif model == "boom":
            await respond(send, 500, {"error": {"message": "upstream exploded"}})
        elif not request.get("stream"):
            await respond(send, 200, SPARSE if model == "sparse" else {**FULL, "model": model})
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            for i in range(3):
                await send({"type": "http.response.body", "body": sse_chunk(model, i),
                            "more_body": True})
            if model == "cut":
                await asyncio.to_thread(self.release.wait, 60)
                raise RuntimeError("upstream died mid-stream")  # uvicorn drops the connection
            if model == "usage":
                usage = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
                await send({"type": "http.response.body", "more_body": True,
                            "body": b"data: " + json.dumps({
                                "id": "chatcmpl-s", "object": "chat.completion.chunk",
                                "created": 1700000000, "model": model, "choices": [],
                                "usage": usage}).encode() + b"\n\n"})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def respond(send: Any, status: int, value: Any) -> None:
    data = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class Setup:
    def __init__(self, upstreams: list[Server], gateway: str,
                 records: list[EgressRecord]) -> None:
        self.upstream, self.cut = upstreams[0], upstreams[1]
        self.gateway, self.records = gateway, records

    def chat(self, model: str, **extra: Any) -> httpx.Response:
        return httpx.post(self.gateway + "/v1/chat/completions", timeout=30, json={
            "model": model, "messages": [{"role": "user", "content": "go"}], **extra})

    def chat_records(self) -> list[EgressRecord]:
        return [r for r in self.records if r.path == "/v1/chat/completions"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    upstreams = [Server(models) for models in MODELS]
    up_servers = [AppServer(u).start() for u in upstreams]
    home: Path = tmp_path_factory.mktemp("passthrough")
    settings = Settings(home=home, scan_default_ports=False, embedded="off",
                        servers=[s.base_url for s in up_servers])
    client = AsyncClient(settings)
    records: list[EgressRecord] = []
    client.policy.recorders.append(records.append)
    gateway = create_app(settings, client)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # The test servers run without lifespan: close the client on its own loop.
        if scope["type"] == "http" and scope["path"] == "/__close":
            await client.aclose()
            await respond(send, 200, {})
            return
        await gateway(scope, receive, send)

    gw_server = AppServer(app).start()
    try:
        yield Setup(upstreams, gw_server.base_url, records)
    finally:
        upstreams[1].release.set()
        httpx.post(gw_server.base_url + "/__close", timeout=30)
        gw_server.stop()
        for server in up_servers:
            server.stop()


def test_reply_is_the_servers_bytes_and_is_recorded(setup: Setup) -> None:
    before = len(setup.chat_records())
    response = setup.chat("full", temperature=0.5)
    assert response.status_code == 200
    # Untouched: even the nulls a re-serialised reply would drop are there.
    assert response.content == json.dumps({**FULL, "model": "full"}).encode()
    assert response.headers["x-localinfer-tier"] == "local"
    assert response.headers["x-localinfer-backend"]
    assert setup.upstream.bodies[-1]["temperature"] == 0.5  # the request went through whole
    records = setup.chat_records()[before:]
    assert len(records) == 1
    rec = records[0]
    assert (rec.method, rec.host, rec.status, rec.error, rec.purpose) == (
        "POST", "127.0.0.1", 200, None, "backend")
    assert rec.bytes_sent > 0 and rec.bytes_received == len(response.content)
    assert rec.trust == "device"


def test_sparse_reply_is_completed_not_passed_on(setup: Setup) -> None:
    response = setup.chat("sparse")
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"


def test_stream_passes_chunks_through_and_ends_with_done(setup: Setup) -> None:
    response = setup.chat("full", stream=True)
    assert response.status_code == 200
    assert response.content == b"".join(sse_chunk("full", i) for i in range(3)) + \
        b"data: [DONE]\n\n"
    rec = setup.chat_records()[-1]
    assert rec.status == 200 and rec.error is None and rec.bytes_received > 0


def test_stream_with_include_usage_moves_usage_to_its_own_last_chunk(setup: Setup) -> None:
    response = setup.chat("usage", stream=True, stream_options={"include_usage": True})
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 7
    assert all(json.loads(e)["choices"] for e in events[:-2])


def test_upstream_context_error_is_a_400_with_the_counts(setup: Setup) -> None:
    response = setup.chat("ctx")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "9000" in error["message"] and "4096" in error["message"]
    assert setup.chat_records()[-1].status == 400


def test_upstream_500_is_openai_error_json(setup: Setup) -> None:
    response = setup.chat("boom")
    assert 500 <= response.status_code < 600
    assert "upstream exploded" in response.json()["error"]["message"]


def test_upstream_dying_mid_stream_ends_with_an_error_event(setup: Setup) -> None:
    events: list[str] = []
    with httpx.stream("POST", setup.gateway + "/v1/chat/completions", timeout=60, json={
            "model": "cut", "stream": True,
            "messages": [{"role": "user", "content": "go"}]}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                if len(events) == 3:
                    setup.cut.release.set()
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:3]] == [
        "t0 ", "t1 ", "t2 "]
    error = json.loads(events[3])["error"]
    assert "incomplete" in error["message"]
    assert events[4] == "[DONE]"
    rec = setup.chat_records()[-1]
    assert rec.error is not None  # the cut is in the ledger


def test_offline_refuses_before_connecting() -> None:
    records: list[EgressRecord] = []
    policy = EgressPolicy(offline=True, recorders=[records.append])
    # A private address nothing listens on: refused by policy, so never dialled.
    upstream = make_client(policy, tier="local", base_url="http://10.255.255.1:8080/v1")

    async def go() -> None:
        try:
            with pytest.raises(EgressBlocked, match="offline mode"):
                await upstream.post("/chat/completions", content=b"{}")
        finally:
            await upstream.aclose()

    asyncio.run(go())
    assert records == []


def test_refused_connection_is_recorded_and_mapped(setup: Setup) -> None:
    from localinfer.http import HTTPError, backend_error
    from tests.fakes.serve import free_port

    records: list[EgressRecord] = []
    base = f"http://127.0.0.1:{free_port()}/v1"
    upstream = make_client(EgressPolicy(recorders=[records.append]), tier="local",
                           base_url=base)

    async def go() -> None:
        try:
            with pytest.raises(HTTPError) as info:
                await upstream.post("/chat/completions", content=b"{}")
            assert "is the server running?" in backend_error(info.value, "x", base).message
        finally:
            await upstream.aclose()

    asyncio.run(go())
    assert [(r.path, r.status, r.error) for r in records] == [
        ("/v1/chat/completions", None, "ClientConnectorError")]
