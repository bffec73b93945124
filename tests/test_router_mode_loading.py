"""llama-server in router mode (issue 23 §3): a request for a model the router has not
loaded gets ``503 "Loading model"`` while it loads; that is retried within the request's
deadline (not failed over like any 5xx, and the host is not marked down), and
``router_autoload = false`` refuses such a request instead of having the router load it.
Servers are protocol fakes on 127.0.0.1 (tests/fakes/llama_router.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from localinfer import AsyncClient
from localinfer.errors import BackendError, ModelLoading, NoBackend
from localinfer.gateway import create_app
from localinfer.hosts.health import marks_down
from localinfer.http import HTTPError, backend_error
from localinfer.settings import Settings
from tests.fakes import LlamaRouterFake
from tests.support.servers import RunApp

# Bounds a whole test on a loaded machine; never a wait that must pass.
GUARD = 60.0
LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
UNLOADED = "smollm2-135m-instruct"


def settings_for(url: str, **kw: Any) -> Settings:
    return Settings(**{"scan_default_ports": False, "servers": [url], "embedded": False,
                       "discovery_timeout": 5.0, **kw})


def calls(fake: LlamaRouterFake, path: str, model: str) -> int:
    return sum(1 for r in fake.requests
               if r.path == path and isinstance(r.body, dict) and r.body.get("model") == model)


def failures(client: AsyncClient) -> int:
    return sum(h.failures for h in client.router.hosts._health.values())


@pytest.mark.parametrize("status, body, loading", [
    (503, LOADING, True),
    (503, {"error": {"message": "loading model"}}, True),
    (503, {"error": {"message": "server busy"}}, False),  # any other 503: the host's fault
    (500, LOADING, False),
])
def test_only_a_503_loading_model_is_model_loading(status: int, body: Any,
                                                   loading: bool) -> None:
    failed = HTTPError("status", f"HTTP {status}", status=status,
                       body=json.dumps(body).encode(), reason="")
    err = backend_error(failed, "router", "http://127.0.0.1:9/v1")
    assert isinstance(err, ModelLoading) is loading
    assert (err.status, marks_down(err)) == (status, not loading)
    assert err.http_status == (503 if loading else 502)


async def test_chat_waits_for_the_router_to_load_the_model(run_app: RunApp) -> None:
    fake = LlamaRouterFake(load_503s=3)
    url = run_app(fake.app)
    async with AsyncClient(settings_for(url)) as client:
        reply = await asyncio.wait_for(client.chat("hi", model=UNLOADED, max_tokens=8), GUARD)
        assert reply.text == "router-fake: hi"
        # Three 503s, then the answer; the host answered, so it is not marked down.
        assert calls(fake, "/v1/chat/completions", UNLOADED) == 4
        assert failures(client) == 0


async def test_stream_and_embeddings_wait_for_the_load(run_app: RunApp) -> None:
    fake = LlamaRouterFake(load_503s=2)
    url = run_app(fake.app)
    async with AsyncClient(settings_for(url)) as client:
        async def streamed() -> str:
            chunks = await client.chat("hello there", model=UNLOADED, stream=True)
            return "".join([chunk.text async for chunk in chunks])

        assert await asyncio.wait_for(streamed(), GUARD) == "router-fake: hello there"
        assert calls(fake, "/v1/chat/completions", UNLOADED) == 3
        embedded = await asyncio.wait_for(
            client.embed("x", model="nomic-embed-text-v1.5"), GUARD)
        assert len(embedded.data) == 1
        assert calls(fake, "/v1/embeddings", "nomic-embed-text-v1.5") == 3
        assert failures(client) == 0


@pytest.mark.parametrize("stream, setting", [(False, "request_timeout"),
                                             (True, "first_token_timeout")])
async def test_a_load_past_the_deadline_fails_naming_the_timeout(
        run_app: RunApp, stream: bool, setting: str) -> None:
    fake = LlamaRouterFake(load_503s=10**6)  # never finishes loading
    url = run_app(fake.app)
    async with AsyncClient(settings_for(url, **{setting: 1.0})) as client:
        async def ask() -> None:
            if stream:
                chunks = await client.chat("hi", model=UNLOADED, stream=True)
                async for _ in chunks:
                    pass
            else:
                await client.chat("hi", model=UNLOADED)

        with pytest.raises(BackendError) as caught:
            await asyncio.wait_for(ask(), GUARD)
        message = caught.value.message
        # The only error stays a 503 "try again later", not "every backend failed" (502).
        assert isinstance(caught.value, ModelLoading) and caught.value.http_status == 503
        assert "every backend" not in message
        assert f"still loading model '{UNLOADED}' after 1 s" in message
        assert f"LOCALINFER_{setting.upper()}" in message
        # Asked again within the deadline (waits 0.25 s, 0.5 s, then what is left).
        assert calls(fake, "/v1/chat/completions", UNLOADED) >= 2
        assert failures(client) == 0


async def test_a_load_past_the_deadline_is_503_through_the_gateway(run_app: RunApp) -> None:
    fake = LlamaRouterFake(load_503s=10**6)  # never finishes loading
    settings = settings_for(run_app(fake.app), request_timeout=1.0)
    gateway = run_app(create_app(settings, AsyncClient(settings)))
    async with httpx.AsyncClient(base_url=gateway, timeout=GUARD, trust_env=False) as http:
        response = await http.post("/v1/chat/completions", json={
            "model": UNLOADED, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "model_loading" and "still loading" in error["message"]


class BusyRouter(LlamaRouterFake):
    """Answers every chat with a 503 that is not "Loading model"."""

    async def v1_chat(self, request: Request, body: Any) -> Response:
        return JSONResponse({"error": {"code": 503, "message": "server busy"}},
                            status_code=503)


async def test_another_503_is_not_retried(run_app: RunApp) -> None:
    fake = BusyRouter()
    url = run_app(fake.app)
    async with AsyncClient(settings_for(url)) as client:
        with pytest.raises(BackendError, match="server busy"):
            await asyncio.wait_for(client.chat("hi", model="qwen2.5-0.5b-instruct"), GUARD)
        assert calls(fake, "/v1/chat/completions", "qwen2.5-0.5b-instruct") == 1
        assert failures(client) == 1  # a sick host: marked down as before


async def test_router_autoload_off_refuses_an_unloaded_model(run_app: RunApp) -> None:
    fake = LlamaRouterFake(load_503s=0)
    url = run_app(fake.app)
    async with AsyncClient(settings_for(url, router_autoload=False)) as client:
        with pytest.raises(NoBackend) as caught:
            await asyncio.wait_for(client.chat("hi", model=UNLOADED), GUARD)
        assert caught.value.http_status == 503
        assert f"model '{UNLOADED}' is not loaded" in caught.value.message
        assert "router_autoload is off" in caught.value.message
        assert "LOCALINFER_ROUTER_AUTOLOAD=on" in caught.value.message
        assert calls(fake, "/v1/chat/completions", UNLOADED) == 0
        assert fake.find(UNLOADED).loaded is False  # type: ignore[union-attr]
        # A loaded model is served as ever, and a model nowhere is still "not found".
        reply = await asyncio.wait_for(
            client.chat("hi", model="qwen2.5-0.5b-instruct", max_tokens=8), GUARD)
        assert reply.text == "router-fake: hi"
        with pytest.raises(Exception, match="not found"):
            await asyncio.wait_for(client.chat("hi", model="no-such-model"), GUARD)
