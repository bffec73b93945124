"""Each fingerprint row against canned answers (httpx.MockTransport), taken from the
servers' public docs and sources named in discovery/fingerprints.py. Nothing here opens
a socket: the mock transport stands in for the network, so default ports are safe."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from localinfer.discovery import KINDS, discover
from localinfer.http import EgressPolicy, EgressRecord
from localinfer.settings import Settings
from localinfer.types import ServerInfo
from tests.fakes.network import FakeNetwork, Reply, Routes, ok
from tests.support.discovery_answers import LLAMA_SERVER, VLLM, openai_list

OLLAMA: dict[str, Reply] = {
    "/": ok("Ollama is running"),
    "/api/version": ok({"version": "0.5.7"}),
    "/api/tags": ok({"models": [
        {"name": "llama3.1:latest", "model": "llama3.1:latest",
         "details": {"family": "llama", "families": ["llama"]}},
        {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest",
         "details": {"family": "nomic-bert", "families": ["nomic-bert"]}},
        {"name": "mxbai-embed-large:335m", "model": "mxbai-embed-large:335m",
         "details": {"family": "bert", "families": ["bert"]}},
    ]}),
    "/api/ps": ok({"models": [{"name": "llama3.1:latest", "model": "llama3.1:latest",
                               "size_vram": 0, "expires_at": "2099-01-01T00:00:00Z"}]}),
    "/v1/models": ok(openai_list("llama3.1:latest", "nomic-embed-text:latest",
                                 "mxbai-embed-large:335m", owned_by="library")),
}

LMSTUDIO: dict[str, Reply] = {
    "/api/v0/models": ok({"object": "list", "data": [
        {"id": "qwen2-vl-7b-instruct", "object": "model", "type": "vlm",
         "publisher": "mlx-community", "arch": "qwen2_vl", "compatibility_type": "mlx",
         "quantization": "4bit", "state": "not-loaded", "max_context_length": 32768},
        {"id": "meta-llama-3.1-8b-instruct", "object": "model", "type": "llm",
         "state": "loaded", "max_context_length": 131072},
        {"id": "text-embedding-nomic-embed-text-v1.5", "object": "model",
         "type": "embeddings", "state": "not-loaded", "max_context_length": 2048},
    ]}),
    "/v1/models": ok(openai_list("qwen2-vl-7b-instruct", "meta-llama-3.1-8b-instruct",
                                 "text-embedding-nomic-embed-text-v1.5",
                                 owned_by="organization_owner")),
}

# LocalAI also serves Ollama's routes, "/" heartbeat included (routes/ollama.go).
LOCALAI: dict[str, Reply] = {
    "/readyz": ok("OK"),
    "/healthz": ok("OK"),
    "/version": ok({"version": "v2.24.2"}),
    "/": ok("Ollama is running"),
    "/api/version": ok({"version": "0.5.7"}),
    "/api/tags": ok({"models": [{"name": "phi-2", "model": "phi-2"}]}),
    "/v1/models": ok({"object": "list", "data": [{"id": "phi-2", "object": "model"},
                                                 {"id": "text-embedding-ada-002",
                                                  "object": "model"}]}),
}

LLAMAFILE: dict[str, Reply] = {
    "/v1/models": ok(openai_list("SmolLM2-135M-Instruct.Q4_1", owned_by="llamafile"),
                     server="llamafile/0.9.3"),
}

JAN: dict[str, Reply] = {
    # The identifying title comes first; the rest of the document is large.
    "/openapi.json": ok({"openapi": "3.0.0",
                         "info": {"title": "Jan API Server Endpoints", "version": "1.0"},
                         "paths": {f"/p{i}": {"get": {"summary": "x" * 200}}
                                   for i in range(50)}}),
    "/v1/models": ok(openai_list("janhq/Jan-v1-4B-GGUF", owned_by="user")),
}

KOBOLDCPP: dict[str, Reply] = {
    "/api/extra/version": ok({"result": "KoboldCpp", "version": "1.80.3", "protected": False}),
    "/api/v1/model": ok({"result": "koboldcpp/SmolLM2"}),
    # Its imitations of Ollama and llama-server:
    "/api/version": ok({"version": "0.5.7"}),
    "/api/tags": ok({"models": [{"name": "koboldcpp/SmolLM2", "model": "koboldcpp/SmolLM2"}]}),
    "/props": ok({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1}),
    "/v1/models": ok(openai_list("koboldcpp/SmolLM2", owned_by="koboldcpp")),
}

TEXTGEN: dict[str, Reply] = {
    "/v1/internal/model/info": ok({"model_name": "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
                                   "lora_names": []}),
    "/v1/models": ok(openai_list("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "gpt-3.5-turbo",
                                 "text-embedding-ada-002", owned_by="user")),
}

GPT4ALL: dict[str, Reply] = {
    "/v1/models": ok(openai_list("Llama 3.2 3B Instruct", owned_by="humanity",
                                 permission=[{"object": "model_permission"}])),
}

# What `python -m llama_cpp.server` answers (checked against the real one).
OPENAI_COMPATIBLE: dict[str, Reply] = {
    "/v1/models": ok({"object": "list", "data": [{"id": "/models/smollm2.gguf",
                                                  "object": "model", "owned_by": "me",
                                                  "permissions": []}]}),
    "/openapi.json": ok({"openapi": "3.1.0", "info": {"title": "🦙 llama.cpp Python API"}}),
}


# Docker Model Runner (docs.docker.com/ai/model-runner): banner, OpenAI under /engines/v1,
# Ollama's API at its root.
DOCKER_MODEL_RUNNER: dict[str, Reply] = {
    "/": ok("Docker Model Runner is running"),
    "/api/version": ok({"version": "0.6.0"}),
    "/api/tags": ok({"models": [{"name": "ai/smollm2:latest", "model": "ai/smollm2:latest"}]}),
    "/engines/v1/models": ok(openai_list("ai/smollm2:latest", owned_by="docker")),
}

# Lemonade (server_spec.md): /api/v1/health, OpenAI under /api/v1, Ollama's API too.
LEMONADE: dict[str, Reply] = {
    "/api/v1/health": ok({"status": "ok", "version": "10.1.0", "model_loaded": "Qwen3-0.6B-GGUF",
                          "all_models_loaded": [{"model_name": "Qwen3-0.6B-GGUF"}],
                          "max_models": {"llm": 1}}),
    "/api/v1/models": ok(openai_list("Qwen3-0.6B-GGUF", "nomic-embed-text-v1-GGUF")),
    "/api/version": ok({"version": "0.6.0"}),
}

FOUNDRY_LOCAL: dict[str, Reply] = {
    "/v1/models": ok({**openai_list("phi-4-mini-instruct-generic-cpu", owned_by="Microsoft"),
                      "IsDelta": False, "Successful": True, "HttpStatusCode": 200}),
}

NEXA: dict[str, Reply] = {
    "/": ok("Nexa SDK is running"),
    "/v1/models": ok(openai_list("NexaAI/Qwen3-0.6B-GGUF", owned_by="nexa")),
}


@dataclass
class Case:
    answers: dict[str, Reply]
    kind: str
    version: str | None
    # id -> (capabilities, loaded, aliases)
    models: dict[str, tuple[list[str], bool | None, list[str]]] = field(default_factory=dict)
    api: str = "/v1"


CASES: dict[str, Case] = {
    "ollama": Case(OLLAMA, "ollama", "0.5.7", {
        "llama3.1:latest": (["chat"], True, ["llama3.1"]),
        "nomic-embed-text:latest": (["embeddings"], False, ["nomic-embed-text"]),
        "mxbai-embed-large:335m": (["embeddings"], False, []),
    }),
    "llama.cpp": Case(LLAMA_SERVER, "llama.cpp", "b7100-1a2b3c4",
                      {"smollm2": (["chat"], True, ["smol"])}),
    "lmstudio": Case(LMSTUDIO, "lmstudio", None, {
        "qwen2-vl-7b-instruct": (["chat"], False, []),
        "meta-llama-3.1-8b-instruct": (["chat"], True, []),
        "text-embedding-nomic-embed-text-v1.5": (["embeddings"], False, []),
    }),
    "vllm": Case(VLLM, "vllm", "0.6.3.post1",
                 {"Qwen/Qwen2.5-7B-Instruct": (["chat"], True, [])}),
    "localai": Case(LOCALAI, "localai", "v2.24.2", {
        "phi-2": (["chat"], None, []),
        "text-embedding-ada-002": (["embeddings"], None, []),
    }),
    "llamafile": Case(LLAMAFILE, "llamafile", "0.9.3",
                      {"SmolLM2-135M-Instruct.Q4_1": (["chat"], True, [])}),
    "jan": Case(JAN, "jan", None, {"janhq/Jan-v1-4B-GGUF": (["chat"], True, [])}),
    "koboldcpp": Case(KOBOLDCPP, "koboldcpp", "1.80.3",
                      {"koboldcpp/SmolLM2": (["chat"], True, [])}),
    "textgen-webui": Case(TEXTGEN, "textgen-webui", None, {
        "Qwen2.5-7B-Instruct-Q4_K_M.gguf": (["chat"], True, []),
        "gpt-3.5-turbo": (["chat"], False, []),
        "text-embedding-ada-002": (["embeddings"], False, []),
    }),
    "gpt4all": Case(GPT4ALL, "gpt4all", None, {"Llama 3.2 3B Instruct": (["chat"], None, [])}),
    "openai-compatible": Case(OPENAI_COMPATIBLE, "openai-compatible", None,
                              {"/models/smollm2.gguf": (["chat"], None, [])}),
    "docker-model-runner": Case(DOCKER_MODEL_RUNNER, "docker-model-runner", None,
                                {"ai/smollm2:latest": (["chat"], None, [])}, "/engines/v1"),
    "lemonade": Case(LEMONADE, "lemonade", "10.1.0", {
        "Qwen3-0.6B-GGUF": (["chat"], True, []),
        "nomic-embed-text-v1-GGUF": (["embeddings"], False, [])}, "/api/v1"),
    "foundry-local": Case(FOUNDRY_LOCAL, "foundry-local", None,
                          {"phi-4-mini-instruct-generic-cpu": (["chat"], None, [])}),
    "nexa": Case(NEXA, "nexa", None, {"NexaAI/Qwen3-0.6B-GGUF": (["chat"], None, [])}),
}


def settings(**kw: Any) -> Settings:
    return Settings(**{"scan_default_ports": False, **kw})


async def sweep(network: FakeNetwork, policy: EgressPolicy | None = None,
                **kw: Any) -> list[ServerInfo]:
    return await discover(settings(**kw), policy or EgressPolicy(), transport=network.transport)


def test_every_kind_has_a_case() -> None:
    assert sorted(CASES) == sorted(KINDS)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_row_identifies_its_kind(name: str) -> None:
    case = CASES[name]
    network = FakeNetwork({("127.0.0.1", 7001): case.answers})
    [server] = await sweep(network, servers=["http://127.0.0.1:7001"])
    assert server.kind == case.kind
    assert server.version == case.version
    assert server.base_url == "http://127.0.0.1:7001"
    assert server.api_base == "http://127.0.0.1:7001" + case.api
    got = {m.id: (m.capabilities, m.loaded, m.aliases) for m in server.models}
    assert got == case.models
    assert {m.backend for m in server.models} <= {server.name}
    assert all(m.tier == "local" for m in server.models)


async def test_identified_by_answer_not_by_port() -> None:
    # Ollama's port answering like llama-server, LM Studio's like vLLM.
    network = FakeNetwork({("127.0.0.1", 11434): LLAMA_SERVER, ("127.0.0.1", 1234): VLLM})
    found = await sweep(network, scan_default_ports=True)
    assert {(s.base_url, s.kind) for s in found} == {
        ("http://127.0.0.1:11434", "llama.cpp"), ("http://127.0.0.1:1234", "vllm")}


@pytest.mark.parametrize("answers, kind", [(LOCALAI, "localai"), (LLAMA_SERVER, "llama.cpp"),
                                           (LLAMAFILE, "llamafile")])
async def test_kinds_sharing_port_8080(answers: dict[str, Reply], kind: str) -> None:
    network = FakeNetwork({("127.0.0.1", 8080): answers})
    [server] = await sweep(network, scan_default_ports=True)
    assert (server.base_url, server.kind) == ("http://127.0.0.1:8080", kind)


async def test_default_ports_are_all_probed() -> None:
    network = FakeNetwork({})
    assert await sweep(network, scan_default_ports=True) == []
    ports = {port for _, port in network.checked}
    assert ports == {11434, 8080, 9931, 1234, 8000, 1337, 5001, 5000, 4891, 12434, 13305,
                     18181}
    assert {host for host, _ in network.checked} == {"127.0.0.1"}
    assert network.seen == []  # nothing answered the TCP check: no HTTP request


async def test_llama_server_ollama_style_list_is_not_ollama() -> None:
    # The "models" array alone must not make it Ollama, nor double its model list.
    network = FakeNetwork({("127.0.0.1", 7002): LLAMA_SERVER})
    [server] = await sweep(network, servers=["http://127.0.0.1:7002"])
    assert server.kind == "llama.cpp"
    assert [m.id for m in server.models] == ["smollm2"]


async def test_llama_server_router_mode_reports_loaded_per_model() -> None:
    answers = {**LLAMA_SERVER, "/v1/models": ok({"object": "list", "data": [
        {"id": "a", "object": "model", "owned_by": "llamacpp", "status": {"value": "loaded"}},
        {"id": "b", "object": "model", "owned_by": "llamacpp",
         "status": {"value": "unloaded"}}]}, server="llama.cpp")}
    network = FakeNetwork({("127.0.0.1", 7003): answers})
    [server] = await sweep(network, servers=["http://127.0.0.1:7003"])
    assert {m.id: m.loaded for m in server.models} == {"a": True, "b": False}


async def test_koboldcpp_imitating_ollama_and_llama_server_is_koboldcpp() -> None:
    # Worst case: every Ollama and llama-server marker at once, plus its own.
    answers = {**OLLAMA, **LLAMA_SERVER, **KOBOLDCPP, "/": ok("Ollama is running")}
    network = FakeNetwork({("127.0.0.1", 11434): answers})
    [server] = await sweep(network, scan_default_ports=True)
    assert server.kind == "koboldcpp"
    assert server.version == "1.80.3"


async def test_localai_imitating_ollama_is_localai() -> None:
    network = FakeNetwork({("127.0.0.1", 11434): LOCALAI})
    [server] = await sweep(network, scan_default_ports=True)
    assert server.kind == "localai"


@pytest.mark.parametrize("health", [
    ok({"status": "ok"}, **{"x-localinfer-service": "gateway"}),
    ok({"status": "ok", "service": "localinfer", "version": "0.1.0"}),
])
async def test_localinfer_gateway_is_skipped(health: Reply) -> None:
    gateway = {"/health": health, "/v1/models": ok(openai_list("smollm2", owned_by="x"))}
    network = FakeNetwork({("127.0.0.1", 8642): gateway, ("127.0.0.1", 7004): OLLAMA})
    found = await sweep(network, servers=["http://127.0.0.1:8642", "http://127.0.0.1:7004"])
    assert [s.kind for s in found] == ["ollama"]


async def test_unrecognised_servers_are_not_listed() -> None:
    web_page = {"/": ok("<html>my blog</html>"), "/health": ok({"status": "ok"})}
    broken: Routes = {path: (500, {"error": "boom"}, {}) for path in ("/", "/v1/models", "/health")}
    network = FakeNetwork({("127.0.0.1", 7005): web_page, ("127.0.0.1", 7006): broken})
    assert await sweep(network, servers=["http://127.0.0.1:7005",
                                         "http://127.0.0.1:7006"]) == []


async def test_huge_root_page_is_not_read_in_full() -> None:
    page = "<!doctype html>" + "x" * 5_000_000
    network = FakeNetwork({("127.0.0.1", 7007): {**LLAMA_SERVER, "/": ok(page)}})
    [server] = await sweep(network, servers=["http://127.0.0.1:7007"])
    assert server.kind == "llama.cpp"


async def test_one_stuck_probe_does_not_lose_the_other_answers() -> None:
    network = FakeNetwork({("127.0.0.1", 7011): VLLM}, slow_paths={"/openapi.json": 30})
    [server] = await asyncio.wait_for(
        sweep(network, servers=["http://127.0.0.1:7011"], discovery_timeout=0.2), 10)
    assert (server.kind, server.version) == ("vllm", "0.6.3.post1")


async def test_offline_refuses_non_loopback_before_connecting() -> None:
    network = FakeNetwork({("192.168.1.20", 11434): OLLAMA, ("127.0.0.1", 7008): VLLM})
    found = await sweep(network, EgressPolicy(offline=True), offline=True,
                        servers=["http://192.168.1.20:11434", "https://gpu.example.com",
                                 "http://127.0.0.1:7008"])
    assert [s.kind for s in found] == ["vllm"]
    assert {url.host for url in network.seen} == {"127.0.0.1"}


async def test_configured_lan_server_goes_through_the_egress_record() -> None:
    records: list[EgressRecord] = []
    policy = EgressPolicy(recorders=[records.append])
    network = FakeNetwork({("192.168.1.20", 11434): OLLAMA, ("127.0.0.1", 7009): VLLM})
    found = await sweep(network, policy,
                        servers=["http://192.168.1.20:11434", "http://127.0.0.1:7009"])
    # Loopback first, then configured remote servers.
    assert [(s.kind, s.base_url) for s in found] == [
        ("vllm", "http://127.0.0.1:7009"), ("ollama", "http://192.168.1.20:11434")]
    lan = [r for r in records if r.host == "192.168.1.20"]
    assert lan and {(r.purpose, r.network, r.tier) for r in lan} == {
        ("discovery", "private", "local")}
    assert {r.path for r in lan} >= {"/", "/api/tags", "/api/version"}


@pytest.mark.parametrize("given, base", [
    ("localhost:11434", "http://localhost:11434"),
    ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080"),
    ("http://box.lan:1234/", "http://box.lan:1234"),
])
async def test_configured_urls_are_normalised_to_the_server_root(given: str, base: str) -> None:
    from localinfer.discovery import normalize_base_url

    assert normalize_base_url(given) == base


async def test_malformed_configured_urls_are_ignored() -> None:
    network = FakeNetwork({("127.0.0.1", 7012): VLLM})
    found = await sweep(network, servers=["ftp://127.0.0.1:21", "http://", "http://[::1",
                                          "http://127.0.0.1:7012"])
    assert [s.kind for s in found] == ["vllm"]
    assert {url.port for url in network.seen} == {7012}


async def test_configured_default_port_is_probed_once() -> None:
    network = FakeNetwork({("localhost", 11434): OLLAMA, ("127.0.0.1", 11434): OLLAMA})
    found = await sweep(network, scan_default_ports=True,
                        servers=["http://localhost:11434", "127.0.0.1:11434/v1"])
    # One server, under the name the user gave it.
    assert [s.base_url for s in found] == ["http://localhost:11434"]
    assert {url.host for url in network.seen if url.port == 11434} == {"localhost"}


async def test_configured_servers_rank_before_default_ports() -> None:
    network = FakeNetwork({("127.0.0.1", 11434): OLLAMA, ("127.0.0.1", 7013): VLLM})
    found = await sweep(network, scan_default_ports=True, servers=["http://127.0.0.1:7013"])
    assert [s.kind for s in found] == ["vllm", "ollama"]


async def test_status_json_has_the_stable_keys() -> None:
    from localinfer.discovery import status_json_servers

    network = FakeNetwork({("127.0.0.1", 7010): OLLAMA})
    found = await sweep(network, servers=["http://127.0.0.1:7010"])
    [entry] = status_json_servers(found)
    assert set(entry) == {"kind", "base_url", "version", "models", "latency_ms"}
    assert entry["kind"] == "ollama" and entry["version"] == "0.5.7"
    assert entry["models"][0] == {"id": "llama3.1:latest", "capabilities": ["chat"],
                                  "loaded": True}
    json.dumps(entry)  # plain JSON, no pydantic objects left
