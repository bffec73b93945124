"""Discovery over real loopback sockets: the protocol fakes served by uvicorn, a port
that refuses, servers that hang or drop the connection, and the default-port path with
its raw TCP pre-check."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from localinfer.discovery import default_ports, discover
from localinfer.http import EgressPolicy
from localinfer.settings import Settings
from localinfer.types import ServerInfo
from tests.fakes import FAKES, AppServer, GatewayFake, OllamaFake, VLLMFake, port_is_free
from tests.support.servers import RunApp

# Generous: a guard against hanging, not a speed check (speed lives in bench/).
GUARD = 10.0


# Per-probe timeout for identification tests: a loaded CI machine can take longer than
# the 0.5 s default to answer a fake, and a missed probe changes the kind reported.
PROBE_TIMEOUT = 5.0


async def sweep(*servers: str, **kw: object) -> list[ServerInfo]:
    settings = Settings(**{"scan_default_ports": False, "servers": list(servers),
                           "discovery_timeout": PROBE_TIMEOUT, **kw})
    return await asyncio.wait_for(discover(settings, EgressPolicy()), GUARD)


@pytest.mark.parametrize("kind", sorted(FAKES))
async def test_each_fake_is_identified_over_loopback(kind: str, run_app: RunApp) -> None:
    fake = FAKES[kind]()
    url = run_app(fake.app)
    [server] = await sweep(url)
    assert (server.kind, server.base_url) == (kind, url)
    assert {m.id for m in server.models} == {m.id for m in fake.listed()}
    assert {m.backend for m in server.models} <= {server.name}


async def test_many_kinds_in_one_sweep(run_app: RunApp, refused_url: str) -> None:
    urls = {kind: run_app(cls().app) for kind, cls in FAKES.items()}
    gateway = run_app(GatewayFake().app)
    found = await sweep(refused_url, gateway, *urls.values())
    # Configured order is kept; the gateway and the refused port are left out.
    assert [(s.base_url, s.kind) for s in found] == [(u, k) for k, u in urls.items()]


async def test_ollama_models_loaded_aliases_and_embeddings(run_app: RunApp) -> None:
    fake = OllamaFake()
    url = run_app(fake.app)
    [server] = await sweep(url)
    assert server.version == fake.version
    models = {m.id: m for m in server.models}
    assert models["smollm2:135m"].loaded is True
    assert models["llama3.2:latest"].loaded is False
    assert models["llama3.2:latest"].answers_to("llama3.2")
    assert models["nomic-embed-text:latest"].capabilities == ["embeddings"]
    # Using a model loads it, as Ollama does; the next sweep sees it in /api/ps.
    httpx.post(url + "/api/chat", json={"model": "llama3.2", "stream": False,
                                        "messages": [{"role": "user", "content": "hi"}]},
               trust_env=False)
    [again] = await sweep(url)
    assert {m.id: m.loaded for m in again.models}["llama3.2:latest"] is True


@pytest.mark.parametrize("mode", ["hang", "drop", "error"])
async def test_failing_server_is_left_out(mode: str, run_app: RunApp) -> None:
    broken = VLLMFake(fail=mode, fail_scope="all")  # type: ignore[arg-type]
    healthy = OllamaFake()
    # Long enough for the healthy fake on a loaded machine; the hanging one never answers.
    found = await sweep(run_app(broken.app), run_app(healthy.app), discovery_timeout=2.0)
    assert [s.kind for s in found] == ["ollama"]


async def test_default_port_found_through_tcp_precheck() -> None:
    # Bind a fake on a default port that is free here; real servers a developer runs on
    # other default ports may show up too and do not matter.
    port = next((p for p in default_ports() if port_is_free(p)), None)
    if port is None:
        pytest.skip("every default port is taken on this machine")
    with AppServer(VLLMFake().app, port) as server:
        found = await asyncio.wait_for(
            discover(Settings(scan_default_ports=True, servers=[]), EgressPolicy()), GUARD)
    assert (server.base_url, "vllm") in {(s.base_url, s.kind) for s in found}


async def test_nothing_listening_builds_no_client(monkeypatch: pytest.MonkeyPatch,
                                                  refused_url: str) -> None:
    import localinfer.discovery.sweep as sweep_module

    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("an HTTP client was built with nothing to probe")

    monkeypatch.setattr(sweep_module, "make_client", no_client)
    assert await sweep(refused_url) == []
