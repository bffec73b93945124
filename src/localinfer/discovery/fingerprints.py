"""The table of server kinds: one row per kind, checked in order, first match wins.

A server is identified by what it answers, never by its port: the ports only say
where to look on loopback. The order matters where servers imitate each other:

* KoboldCpp serves Ollama's and llama-server's routes too, so it comes first
  (``/api/extra/version`` answers ``{"result": "KoboldCpp"}``, koboldcpp.py).
* LocalAI also serves Ollama's ``/api/*`` routes (core/http/routes/ollama.go), so it
  precedes Ollama.
* llama-server's ``/v1/models`` carries an Ollama-style ``models`` array next to
  ``data``; Ollama is therefore recognised by its root banner, never by that array.
* Docker Model Runner, Lemonade, LightRAG and many proxies answer Ollama's ``/api/*``
  routes (``/api/version`` included): Ollama needs its root banner *and* a version, and
  the imitators that say who they are come first.

Adding a kind is adding a row. Sources are named per row; where a marker could not be
confirmed from a public source the row says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .answers import (
    NO_VERSION,
    Answers,
    Check,
    Probe,
    Reader,
    header_is,
    header_starts,
    header_version,
    items_have,
    json_has,
    json_has_any,
    json_is,
    json_str,
    json_text,
    merge_probes,
    openai_list,
    owned_by,
    status_ok,
    text_matches,
    text_starts,
)
from .readers import (
    LEMONADE_MODELS,
    LLAMACPP_MODELS,
    LMSTUDIO_MODELS,
    OLLAMA_MODELS,
    TEXTGEN_MODELS,
    Models,
    openai_models,
)

GATEWAY_HEADER = "x-localinfer-service"
OPENAI_MODELS = openai_models()


@dataclass(frozen=True)
class Fingerprint:
    kind: str
    identify: Check
    ports: tuple[int, ...] = ()
    version: Reader[str | None] = NO_VERSION
    models: Models = OPENAI_MODELS
    # Root of the OpenAI-compatible API relative to the server root.
    api_suffix: str = "/v1"
    # Identified only to be left out (localinfer's own gateway).
    skip: bool = False

    @property
    def detail_probes(self) -> frozenset[Probe]:
        return merge_probes(self.version.probes, self.models.probes)


def _llamacpp_props() -> Check:
    # /props: build_info (current) or default_generation_settings (older builds).
    return json_has_any("/props", "build_info", "default_generation_settings")


FINGERPRINTS: tuple[Fingerprint, ...] = (
    # localinfer's gateway announces itself on /health; listing it would route to itself.
    Fingerprint("localinfer-gateway", skip=True,
                identify=header_is("/health", GATEWAY_HEADER, "gateway")
                | json_is("/health", "service", "localinfer")),
    # KoboldCpp (koboldcpp.py): GET /api/extra/version -> {"result": "KoboldCpp", "version"}.
    Fingerprint("koboldcpp", ports=(5001,),
                identify=json_is("/api/extra/version", "result", "KoboldCpp"),
                version=json_text("/api/extra/version", "version"),
                models=openai_models(loaded=True)),
    # llamafile's own server (llamafile/server/client.cpp, v1_models.cpp) sends
    # "Server: llamafile/<version>" and owned_by "llamafile". Its older server, a fork of
    # llama.cpp's example server, answers like llama-server and is reported as llama.cpp.
    Fingerprint("llamafile", ports=(8080,),
                identify=header_starts("/v1/models", "server", "llamafile")
                | owned_by("llamafile"),
                version=header_version("/v1/models", "server", "llamafile"),
                models=openai_models(loaded=True)),
    # LocalAI (core/http/routes/health.go, localai.go): /readyz answers 200 and
    # /version answers {"version": ...}. Ollama and vLLM have no /readyz.
    Fingerprint("localai", ports=(8080,),
                identify=status_ok("/readyz") & json_str("/version", "version"),
                version=json_text("/version", "version")),
    # Docker Model Runner (docs.docker.com/ai/model-runner): GET / -> "Docker Model Runner
    # is running"; OpenAI API under /engines/v1 (and /engines/llama.cpp/v1); it also
    # answers Ollama's API at its root, so it precedes Ollama. No version over HTTP here.
    Fingerprint("docker-model-runner", ports=(12434,),
                identify=text_starts("/", "Docker Model Runner is running"),
                models=openai_models("/engines/v1/models"), api_suffix="/engines/v1"),
    # AMD Lemonade Server (lemonade docs/server/server_spec.md): /api/v1/health ->
    # {"status", "version", "all_models_loaded", "max_models"}; OpenAI API under /api/v1;
    # it serves Ollama's API too (optionally on 11434). Port 13305 since v10.1, 8000 before.
    Fingerprint("lemonade", ports=(13305, 8000),
                identify=json_has_any("/api/v1/health", "all_models_loaded", "max_models"),
                version=json_text("/api/v1/health", "version"),
                models=LEMONADE_MODELS, api_suffix="/api/v1"),
    # Ollama (docs.ollama.com/api): GET / -> "Ollama is running"; /api/version, /api/tags,
    # /api/ps (models in memory). The banner and a version together: either alone is
    # answered by imitators.
    Fingerprint("ollama", ports=(11434,),
                identify=text_starts("/", "Ollama is running")
                & json_str("/api/version", "version"),
                version=json_text("/api/version", "version"),
                models=OLLAMA_MODELS),
    # LM Studio REST API v0 (lmstudio.ai/docs/api/rest-api): /api/v0/models entries carry
    # type (llm|vlm|embeddings) and state (loaded|not-loaded); REST API v1 (0.4+,
    # docs/developer/rest/list): /api/v1/models -> {"models": [{"key", "type",
    # "loaded_instances"}]}. The headless llmster daemon serves the same. No version
    # endpoint is documented, so version stays null.
    Fingerprint("lmstudio", ports=(1234,),
                identify=(json_is("/api/v0/models", "object", "list")
                          & json_has("/api/v0/models", "data"))
                | items_have("/api/v1/models", "models", "key", "loaded_instances"),
                models=LMSTUDIO_MODELS),
    # Microsoft Foundry Local (learn.microsoft.com/azure/ai-foundry/foundry-local): a new
    # random port at every start, found through the process table; its /v1/models body
    # carries IsDelta / Successful / HttpStatusCode next to the list.
    Fingerprint("foundry-local",
                identify=json_has("/v1/models", "IsDelta", "Successful", "HttpStatusCode")),
    # Nexa SDK (NexaAI/nexa-sdk runner/server/route.go): GET / -> "Nexa SDK is running",
    # OpenAI chat, embeddings and reranking under /v1; 127.0.0.1:18181 by default.
    Fingerprint("nexa", ports=(18181,),
                identify=text_starts("/", "Nexa SDK is running")),
    # llama.cpp llama-server (tools/server): /props with build_info, owned_by "llamacpp",
    # "Server: llama.cpp" header. 8080 is its classic default, 9931 newer builds'.
    Fingerprint("llama.cpp", ports=(8080, 9931),
                identify=_llamacpp_props() | owned_by("llamacpp")
                | header_is("/v1/models", "server", "llama.cpp"),
                version=json_text("/props", "build_info"),
                models=LLAMACPP_MODELS),
    # vLLM OpenAI server: owned_by "vllm" in /v1/models, GET /version -> {"version"}.
    Fingerprint("vllm", ports=(8000,),
                identify=owned_by("vllm"),
                version=json_text("/version", "version"),
                models=openai_models(loaded=True)),
    # Jan (src-tauri/src/core/server/proxy.rs): its /v1/models says owned_by "user" like
    # others do, but it serves /openapi.json titled "Jan API Server Endpoints".
    # Jan exposes no application version over HTTP.
    Fingerprint("jan", ports=(1337,),
                identify=text_matches("/openapi.json", r'"title"\s*:\s*"Jan API Server'),
                models=openai_models(loaded=True)),
    # text-generation-webui (extensions/openai): /v1/internal/model/info ->
    # {"model_name", "lora_names"}. TabbyAPI serves the same path with an OpenAI model
    # card instead, so it falls through to openai-compatible. No version endpoint.
    Fingerprint("textgen-webui", ports=(5000,),
                identify=json_has("/v1/internal/model/info", "model_name", "lora_names"),
                models=TEXTGEN_MODELS),
    # GPT4All chat's API server (gpt4all-chat/src/server.cpp): owned_by "humanity".
    # No version endpoint.
    Fingerprint("gpt4all", ports=(4891,),
                identify=owned_by("humanity")),
    # Anything else that answers an OpenAI model list.
    Fingerprint("openai-compatible", identify=openai_list()),
)

KINDS: tuple[str, ...] = tuple(f.kind for f in FINGERPRINTS if not f.skip)


def default_ports(table: Iterable[Fingerprint] = FINGERPRINTS) -> tuple[int, ...]:
    """Every port some kind listens on by default, once, in table order."""
    return tuple(dict.fromkeys(port for row in table for port in row.ports))


def first_round(table: Iterable[Fingerprint] = FINGERPRINTS) -> frozenset[Probe]:
    """The probes that tell every kind apart, sent together to each server."""
    return merge_probes(*(row.identify.probes for row in table))


def identify(answers: Answers,
             table: Iterable[Fingerprint] = FINGERPRINTS) -> Fingerprint | None:
    return next((row for row in table if row.identify(answers)), None)


def row_for(kind: str, table: Iterable[Fingerprint] = FINGERPRINTS) -> Fingerprint | None:
    return next((row for row in table if row.kind == kind), None)


def port_kind(port: int, table: Iterable[Fingerprint] = FINGERPRINTS) -> str | None:
    """The kind a default port belongs to, when only one kind uses it (1234: LM Studio;
    8080 is shared, so None)."""
    kinds = {row.kind for row in table if port in row.ports}
    return kinds.pop() if len(kinds) == 1 else None
