"""The kinds added for issue 23: told apart from their imitators (Ollama's API is answered
by many), routed through their real base paths, servers that want a key listed with the
command that fixes it, and llama-server's router mode (loaded vs available)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from localinfer import AsyncClient
from localinfer.cli.main import main
from localinfer.discovery import discover, probe_server, status_json_servers
from localinfer.discovery.locked import NeedsKey
from localinfer.http import EgressPolicy, make_client
from localinfer.settings import Settings
from localinfer.types import ServerInfo
from tests.fakes import (
    DockerModelRunnerFake,
    JanFake,
    LemonadeFake,
    LlamaRouterFake,
    LMStudioFake,
    NexaFake,
)
from tests.fakes.network import FakeNetwork, Reply, ok
from tests.support.servers import RunApp

GUARD = 30.0
PROBE_TIMEOUT = 5.0

OLLAMA_ROOT = ok("Ollama is running")
OLLAMA_VERSION = ok({"version": "0.17.1"})
OLLAMA_TAGS = ok({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]})


async def sweep(*servers: str, **kw: Any) -> list[ServerInfo]:
    settings = Settings(**{"scan_default_ports": False, "servers": list(servers),
                           "discovery_timeout": PROBE_TIMEOUT, "embedded": False, **kw})
    return await asyncio.wait_for(discover(settings, EgressPolicy()), GUARD)


@pytest.mark.parametrize("answers, kind", [
    # Ollama: banner and version together.
    ({"/": OLLAMA_ROOT, "/api/version": OLLAMA_VERSION, "/api/tags": OLLAMA_TAGS}, "ollama"),
    # /api/version alone (LightRAG, proxies): not Ollama, and nothing else either.
    ({"/api/version": OLLAMA_VERSION, "/api/tags": OLLAMA_TAGS}, None),
    # The banner without a version behind it: an imitation.
    ({"/": OLLAMA_ROOT, "/api/tags": OLLAMA_TAGS}, None),
    # Docker Model Runner answers Ollama's API at its root, with its own banner.
    ({"/": ok("Docker Model Runner is running"), "/api/version": OLLAMA_VERSION,
      "/api/tags": OLLAMA_TAGS, "/engines/v1/models": ok({"object": "list", "data": []})},
     "docker-model-runner"),
    # Lemonade serving Ollama's API on Ollama's port.
    ({"/": OLLAMA_ROOT, "/api/version": OLLAMA_VERSION, "/api/tags": OLLAMA_TAGS,
      "/api/v1/health": ok({"status": "ok", "all_models_loaded": []})}, "lemonade"),
])
async def test_ollama_shaped_answers_are_told_apart(answers: dict[str, Reply],
                                                    kind: str | None) -> None:
    network = FakeNetwork({("127.0.0.1", 11434): answers})
    found = await discover(Settings(scan_default_ports=True, servers=[]), EgressPolicy(),
                           transport=network.transport)
    assert [s.kind for s in found] == ([kind] if kind else [])


@pytest.mark.parametrize("fake, api", [
    (DockerModelRunnerFake, "/engines/v1"), (LemonadeFake, "/api/v1"), (NexaFake, "/v1")])
async def test_new_kinds_are_routed_through_their_base_path(fake: type[Any], api: str,
                                                            run_app: RunApp) -> None:
    server = fake()
    url = run_app(server.app)
    settings = Settings(scan_default_ports=False, servers=[url], embedded=False,
                        discovery_timeout=PROBE_TIMEOUT)
    async with AsyncClient(settings) as client:
        model = server.models[0].id
        reply = await client.chat("hello there", model=model, max_tokens=8)
    assert reply.text == server.reply_prefix + "hello there"
    assert any(r.path == api + "/chat/completions" for r in server.requests)


async def test_docker_model_runner_is_not_taken_for_ollama_over_loopback(
        run_app: RunApp) -> None:
    [server] = await sweep(run_app(DockerModelRunnerFake().app))
    assert (server.kind, server.api_base.endswith("/engines/v1")) == ("docker-model-runner", True)


async def test_jan_with_a_key_is_listed_with_the_fix(run_app: RunApp,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url = run_app(JanFake(api_key="jan-secret").app)
    [server] = await sweep(url)
    assert isinstance(server, NeedsKey) and server.kind == "jan" and server.models == []
    [entry] = status_json_servers([server])
    assert entry["needs_key"] is True
    assert entry["hint"] == f"needs a key: `localinfer hosts add {url} --token-env VAR`"
    monkeypatch.setenv("LOCALINFER_SERVERS", url)
    monkeypatch.setenv("LOCALINFER_SCAN_DEFAULT_PORTS", "false")
    monkeypatch.setenv("LOCALINFER_EMBEDDED", "off")
    monkeypatch.setenv("LOCALINFER_DISCOVERY_TIMEOUT", str(PROBE_TIMEOUT))
    assert main(["status"]) == 0
    assert f"needs a key: `localinfer hosts add {url} --token-env VAR`" in capsys.readouterr().out
    # Declared with its key, the same server is identified with its models.
    monkeypatch.setenv("JAN_KEY", "jan-secret")
    [keyed] = await sweep(hosts=[{"url": url, "token_env": "JAN_KEY"}], servers=[])
    assert not isinstance(keyed, NeedsKey) and keyed.kind == "jan" and keyed.models


async def test_lmstudio_tokens_are_listed_under_the_programs_kind(run_app: RunApp) -> None:
    # Every route refuses: only the owning program (or its default port) says what it is.
    url = run_app(LMStudioFake(api_key="lms-token").app)
    async with make_client(EgressPolicy(), tier="local", purpose="discovery") as client:
        unnamed = await probe_server(client, url, PROBE_TIMEOUT)
        named = await probe_server(client, url, PROBE_TIMEOUT, hint="lmstudio")
    assert unnamed is None
    assert isinstance(named, NeedsKey) and named.kind == "lmstudio"


async def test_lmstudio_native_v1_only(run_app: RunApp) -> None:
    [server] = await sweep(run_app(LMStudioFake(v0=False).app))
    assert server.kind == "lmstudio"
    assert {m.id: (m.loaded, m.capabilities) for m in server.models} == {
        "qwen2.5-0.5b-instruct": (True, ["chat"]),
        "text-embedding-nomic-embed-text-v1.5": (False, ["embeddings"])}


async def test_router_mode_loaded_vs_available_and_every_model_routable(
        run_app: RunApp, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = LlamaRouterFake(load_503s=0)
    url = run_app(fake.app)
    [server] = await sweep(url)
    assert (server.kind, server.version) == ("llama.cpp", fake.build_info)
    assert {m.id: m.loaded for m in server.models} == {
        "qwen2.5-0.5b-instruct": True, "smollm2-135m-instruct": False,
        "nomic-embed-text-v1.5": False}
    monkeypatch.setenv("LOCALINFER_SERVERS", url)
    monkeypatch.setenv("LOCALINFER_SCAN_DEFAULT_PORTS", "false")
    monkeypatch.setenv("LOCALINFER_EMBEDDED", "off")
    monkeypatch.setenv("LOCALINFER_DISCOVERY_TIMEOUT", str(PROBE_TIMEOUT))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-0.5b-instruct, smollm2-135m-instruct (available)" in out
    # An unloaded model is routed to the router, which loads it.
    settings = Settings(scan_default_ports=False, servers=[url], embedded=False,
                        discovery_timeout=PROBE_TIMEOUT)
    async with AsyncClient(settings) as client:
        reply = await client.chat("hi", model="smollm2-135m-instruct", max_tokens=8)
    assert reply.text == "router-fake: hi"
    assert fake.find("smollm2-135m-instruct").loaded is True  # type: ignore[union-attr]
    assert main(["status", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["servers"][0]["models"]
    assert {m["id"]: m["loaded"] for m in models}["smollm2-135m-instruct"] is True
