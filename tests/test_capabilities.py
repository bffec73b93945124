"""Capabilities as data (backends/capabilities.py), checked once where the router chooses
a candidate: one that cannot serve a request is skipped when another can; when none can,
the library and every gateway route refuse with the same error. Ollama names resolve in
that same one step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from localinfer.backends.base import Backend
from localinfer.backends.capabilities import Capabilities, Where, needs, refusal
from localinfer.errors import ToolsNotRendered, UsageError
from localinfer.request_fields import FieldRefused
from localinfer.settings import Settings
from localinfer.types import ChatRequest, ModelInfo
from tests.fake_backend import FakeBackend
from tests.gateway_harness import RunApp, client_over, gateway_settings, serve_gateway
from tests.support.stub_router import StubRouter

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
HI = [{"role": "user", "content": "hi"}]
WHERE = Where("srv", "m", "local")


def ask(**fields: Any) -> ChatRequest:
    return ChatRequest(messages=HI, **fields)


def why(request: ChatRequest, caps: Capabilities) -> UsageError | None:
    return refusal(request, needs(request), caps, WHERE)


@pytest.mark.parametrize(("request_", "caps", "param"), [
    (ask(tools=TOOLS), Capabilities(tools=False), "tools"),
    (ask(n=3), Capabilities(max_choices=1), "n"),
    (ask(logprobs=True), Capabilities(logprobs=False), "logprobs"),
    (ask(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
     Capabilities(json_schema=False), "response_format"),
    (ask(max_tokens=4000), Capabilities(context=512), "max_tokens"),
    (ask(max_completion_tokens=4000), Capabilities(context=512), "max_tokens"),
])
def test_each_rule_refuses_naming_the_parameter(request_: ChatRequest, caps: Capabilities,
                                                param: str) -> None:
    err = why(request_, caps)
    assert err is not None and getattr(err, "param", None) == param
    assert (err.http_status, err.exit_code) == (400, 2)


@pytest.mark.parametrize("request_", [
    ask(tools=TOOLS), ask(n=4), ask(logprobs=True), ask(max_tokens=10**6),
    ask(response_format={"type": "json_schema", "json_schema": {"schema": {}}})])
def test_an_unknown_capability_passes(request_: ChatRequest) -> None:
    # Not known is not a refusal: the serving engine honours or refuses it.
    assert why(request_, Capabilities()) is None


def test_a_request_within_the_capabilities_passes() -> None:
    caps = Capabilities(tools=True, max_choices=4, logprobs=True, json_schema=True, context=512)
    assert why(ask(tools=TOOLS, n=4, logprobs=True, max_tokens=512), caps) is None
    assert needs(ask()) == frozenset()  # a plain request asks the backend nothing


def test_the_context_refusal_names_the_setting_to_raise() -> None:
    err = why(ask(max_tokens=4000), Capabilities(context=512, context_setting="embedded_context"))
    assert err is not None
    assert "max_tokens=4000" in err.message and "context (512 tokens, embedded_context)" \
        in err.message and "at most 512" in err.message


def ollama(name: str, model_ids: tuple[str, ...] = ("llama3.1:latest",)) -> FakeBackend:
    backend = FakeBackend(name, model_ids=model_ids)
    backend.kind = "ollama"  # its row: one choice per request
    return backend


def no_tools(name: str, tier: Any = "local", model: str = "fake-model") -> FakeBackend:
    # As discovery lists a llama-server whose chat template drops tools (/props caps).
    return FakeBackend(name, tier=tier,
                       models=[ModelInfo(id=model, backend=name, tier=tier, tools=False)])


async def test_a_candidate_that_cannot_is_skipped_when_another_can() -> None:
    local = no_tools("llama.cpp@x").enqueue()
    embedded = FakeBackend("embedded", tier="embedded", model_ids=("smollm2",)).enqueue()
    reply = await StubRouter([local], [embedded]).chat(ask(tools=TOOLS))
    assert reply.tier == "embedded" and local.calls == []
    plain = await StubRouter([local], [embedded]).chat(ask())
    assert plain.tier == "local"  # without tools the local server serves as ever


async def test_when_none_can_the_error_names_why() -> None:
    local = no_tools("llama.cpp@x")
    embedded = no_tools("embedded", tier="embedded")
    with pytest.raises(ToolsNotRendered) as caught:
        await StubRouter([local], [embedded]).chat(ask(tools=TOOLS))
    assert "llama.cpp@x does not support tool calls for 'fake-model'" in caught.value.message
    assert caught.value.param == "tools"  # type: ignore[attr-defined]
    assert local.calls == embedded.calls == []
    with pytest.raises(FieldRefused, match=r"n=2: ollama@x answers at most 1 choice") as n:
        await StubRouter([ollama("ollama@x")], []).chat(ask(model="llama3.1:latest", n=2))
    assert n.value.param == "n"


async def test_the_stream_refuses_before_its_first_chunk() -> None:
    local = no_tools("llama.cpp@x")
    with pytest.raises(ToolsNotRendered):
        async for _ in StubRouter([local], []).stream_chat(ask(tools=TOOLS)):
            pass
    assert local.calls == []


async def test_router_autoload_off_never_holds_the_embedded_engine_back() -> None:
    # Its kind is llama.cpp's, but it is ours to start, not a router's model to load.
    embedded = FakeBackend("embedded", tier="embedded", models=[
        ModelInfo(id="smollm2", backend="embedded", tier="embedded", loaded=False)])
    embedded.kind = "llama.cpp"
    router = StubRouter([], [embedded])
    router._settings = Settings(home="/nonexistent-test-home", router_autoload=False)
    reply = await router.chat(ask())
    assert reply.tier == "embedded"


# -- the library and the gateway: the same refusal ----------------------------------------

async def library_refusal(home: Path) -> ToolsNotRendered:
    backends: list[Backend] = [no_tools("embedded", tier="embedded")]
    async with client_over(gateway_settings(home), backends) as library:
        with pytest.raises(ToolsNotRendered) as caught:
            await library.chat("hi", model="fake-model", tools=TOOLS)
    return caught.value


def test_library_and_every_route_refuse_alike(run_app: RunApp, tmp_path: Path) -> None:
    refused = asyncio.run(library_refusal(tmp_path))
    assert (refused.http_status, refused.exit_code) == (400, 2)  # the CLI exits 2
    message = refused.message
    base = serve_gateway(run_app, tmp_path, [no_tools("embedded", tier="embedded")])
    bodies = {
        "/v1/chat/completions": {"model": "fake-model", "messages": HI, "tools": TOOLS},
        "/v1/responses": {"model": "fake-model", "input": "hi", "tools": [
            {"type": "function", "name": "weather", "parameters": {"type": "object"}}]},
        "/api/chat": {"model": "fake-model", "messages": HI, "tools": TOOLS},
    }
    for path, body in bodies.items():
        for stream in (False, True):
            r = httpx.post(base + path, json={**body, "stream": stream}, timeout=60,
                           trust_env=False)
            assert r.status_code == 400, (path, stream, r.text)
            error = r.json()["error"]
            if path.startswith("/api/"):
                assert error == message  # Ollama's shape: the message itself
            else:
                assert (error["message"], error["param"]) == (message, "tools")


class Counting(FakeBackend):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.listed = 0

    async def models(self) -> list[ModelInfo]:
        self.listed += 1
        return await super().models()


def test_ollama_names_resolve_in_the_routers_one_step(run_app: RunApp, tmp_path: Path) -> None:
    fake = Counting("embedded", tier="embedded", model_ids=("smollm2",))
    base = serve_gateway(run_app, tmp_path, [fake])
    for path, body in (("/api/chat", {"messages": HI}), ("/api/generate", {"prompt": "hi"})):
        before = fake.listed
        r = httpx.post(base + path, json={"model": "smollm2:latest", "stream": False, **body},
                       timeout=60, trust_env=False)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "smollm2:latest"  # named back as asked
        assert fake.listed - before == 1  # one resolution per request
    assert [m for _, m in fake.calls] == ["smollm2", "smollm2"]
    missing = httpx.post(base + "/api/chat", json={"model": "nope:latest", "messages": HI},
                         timeout=60, trust_env=False)
    assert missing.status_code == 404 and "'nope:latest' not found" in missing.json()["error"]


async def test_a_local_servers_own_context_bounds_max_tokens(tmp_path: Path) -> None:
    # llama-server's /props says a slot's context; the refusal comes before any chat is
    # sent, in the same words and error as the embedded engine's.
    from localinfer import AsyncClient
    from tests.fakes.network import FakeNetwork
    from tests.support.discovery_answers import LLAMA_SERVER, VLLM

    network = FakeNetwork({("127.0.0.1", 7301): LLAMA_SERVER, ("127.0.0.1", 7302): VLLM})
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded=False,
                        servers=["http://127.0.0.1:7301", "http://127.0.0.1:7302"])
    async with AsyncClient(settings, transport=network.transport) as client:
        listed = {m.id: m.context for m in await client.models()}
        with pytest.raises(UsageError) as info:
            await client.chat("hi", model="smollm2", max_tokens=4096)
    assert listed["smollm2"] == 2048 and 32768 in listed.values()
    assert getattr(info.value, "param", None) == "max_tokens"
    assert "2048 tokens" in info.value.message
    assert not [u for u in network.seen if u.path.endswith("/chat/completions")]
