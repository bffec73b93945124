"""Model-list readers: one per list shape a server kind answers with.

Capabilities come from the server where it says (LM Studio's ``type``); otherwise from
the model's family or name, because routing a chat to an embedding model is the worse
mistake. ``loaded`` is None where the server does not tell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..types import Capability
from .answers import Answers, Probe, Reader, answer

# GGUF architectures that only embed (Ollama's details.family / families).
EMBEDDING_FAMILIES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "xlm-roberta",
                                "jina-bert-v2", "jina-bert-v3"})
# Substrings of model names that only embed (nomic-embed-text, mxbai-embed-large,
# text-embedding-3-small, bge-m3, all-minilm, e5-large...).
EMBEDDING_NAME_HINTS = ("embed", "bge-", "minilm", "e5-")


@dataclass(frozen=True)
class SeenModel:
    """A model as a server listed it, before it is tied to a backend name."""

    id: str
    capabilities: tuple[Capability, ...] = ("chat",)
    loaded: bool | None = None
    aliases: tuple[str, ...] = field(default=())
    tools: bool | None = None  # the server passes `tools` to it (None: not told)
    context: int | None = None  # tokens one request may span (None: not told)


Models = Reader[list[SeenModel]]


def capabilities_from_name(name: str, families: Iterable[str] = ()) -> tuple[Capability, ...]:
    lowered = name.lower()
    if any(f in EMBEDDING_FAMILIES for f in families) or any(
            hint in lowered for hint in EMBEDDING_NAME_HINTS):
        return ("embeddings",)
    return ("chat",)


def _ids(items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(str(item["id"]), item) for item in items if isinstance(item.get("id"), str)]


def openai_models(path: str = "/v1/models", *, loaded: bool | None = None) -> Models:
    """An OpenAI ``{"data": [{"id": ...}]}`` list. ``loaded=True`` for servers that list
    only what they hold in memory (vLLM, Jan, KoboldCpp)."""
    def read(a: Answers) -> list[SeenModel]:
        return [SeenModel(mid, capabilities_from_name(mid), loaded,
                          context=_positive(item.get("max_model_len")))  # vLLM says it
                for mid, item in _ids(answer(a, path).items())]
    return Reader(frozenset({Probe(path)}), read)


def clean_id(listed: str) -> tuple[str, tuple[str, ...]]:
    """llama-server lists a model started with ``-m PATH`` under that path, which no UI
    can offer back as a name: list the file's stem, keep the path (and the file name) as
    aliases so every name the server answers to still routes to it."""
    name = listed.replace("\\", "/").rsplit("/", 1)[-1]
    if not name.lower().endswith(".gguf") or len(name) <= len(".gguf"):
        return listed, ()
    stem = name[: -len(".gguf")]
    return stem, tuple(dict.fromkeys(x for x in (listed, name) if x != stem))


def template_tools(a: Answers) -> bool | None:
    """llama-server's /props ``chat_template_caps.supports_tools``: whether its chat
    template renders ``tools`` (without it, tool calls come back empty)."""
    return props_supports_tools(answer(a, "/props").obj())


def props_supports_tools(props: dict[str, Any]) -> bool | None:
    """``chat_template_caps.supports_tools`` of a llama.cpp server's /props (the embedded
    engine's too); None where it does not say."""
    caps = props.get("chat_template_caps")
    value = caps.get("supports_tools") if isinstance(caps, dict) else None
    return value if isinstance(value, bool) else None


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def props_context(props: dict[str, Any]) -> int | None:
    """A llama.cpp server's slot context (``default_generation_settings.n_ctx`` of /props):
    what one request may span, prompt and answer."""
    settings = props.get("default_generation_settings")
    return _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None


def _llamacpp(a: Answers) -> list[SeenModel]:
    # The same answer also carries an Ollama-style "models" array; "data" is the OpenAI
    # list and the only one read here. In router mode each entry has status.value.
    seen = []
    tools = template_tools(a)
    listed_models = _ids(answer(a, "/v1/models").items())
    # /props speaks for the one model a server started with -m; a router's models each
    # have their own context, which its /props does not give.
    context = props_context(answer(a, "/props").obj()) if len(listed_models) == 1 else None
    for listed, item in listed_models:
        mid, names = clean_id(listed)
        status = item.get("status")
        loaded = status.get("value") == "loaded" if isinstance(status, dict) else True
        aliases = tuple(dict.fromkeys(
            x for x in (*names, *(item.get("aliases") or ())) if isinstance(x, str) and x != mid))
        seen.append(SeenModel(mid, capabilities_from_name(mid), loaded, aliases, tools,
                              context))
    return seen


LLAMACPP_MODELS: Models = Reader(frozenset({Probe("/v1/models"), Probe("/props")}), _llamacpp)


def _ollama(a: Answers) -> list[SeenModel]:
    running = answer(a, "/api/ps")
    in_memory = {str(m.get("name") or m.get("model")) for m in running.items("models")}
    seen = []
    for item in answer(a, "/api/tags").items("models"):
        name = item.get("name") or item.get("model")
        if not isinstance(name, str):
            continue
        details = item.get("details")
        details = details if isinstance(details, dict) else {}
        families = [details.get("family"), *(details.get("families") or ())]
        # Ollama accepts "llama3.1" for "llama3.1:latest"; keep both names routable.
        aliases = (name.removesuffix(":latest"),) if name.endswith(":latest") else ()
        seen.append(SeenModel(
            name, capabilities_from_name(name, [f for f in families if isinstance(f, str)]),
            (name in in_memory) if running.ok else None, aliases))
    return seen


OLLAMA_MODELS: Models = Reader(frozenset({Probe("/api/tags"), Probe("/api/ps")}), _ollama)


def _lmstudio(a: Answers) -> list[SeenModel]:
    seen = []
    for mid, item in _ids(answer(a, "/api/v0/models").items()):
        caps: tuple[Capability, ...] = (
            ("embeddings",) if item.get("type") == "embeddings" else ("chat",))
        state = item.get("state")
        seen.append(SeenModel(mid, caps, state == "loaded" if isinstance(state, str) else None))
    return seen


def _lmstudio_v1(a: Answers) -> list[SeenModel]:
    # REST API v1 (lmstudio.ai/docs/developer/rest/list): {"models": [{"key", "type":
    # "llm"|"embedding", "loaded_instances": [...]}]}.
    seen = []
    for item in answer(a, "/api/v1/models").items("models"):
        key, instances = item.get("key"), item.get("loaded_instances")
        if not isinstance(key, str):
            continue
        caps: tuple[Capability, ...] = (
            ("embeddings",) if item.get("type") == "embedding" else ("chat",))
        seen.append(SeenModel(key, caps, bool(instances) if isinstance(instances, list)
                              else None))
    return seen


def _lmstudio_any(a: Answers) -> list[SeenModel]:
    # Newer LM Studio answers v1 (and may drop v0); older ones only v0.
    return _lmstudio_v1(a) if answer(a, "/api/v1/models").ok else _lmstudio(a)


LMSTUDIO_MODELS: Models = Reader(frozenset({Probe("/api/v0/models"), Probe("/api/v1/models")}),
                                 _lmstudio_any)


def _lemonade(a: Answers) -> list[SeenModel]:
    # /api/v1/health's all_models_loaded names what is in memory (server_spec.md).
    health = answer(a, "/api/v1/health").obj().get("all_models_loaded")
    loaded = {m.get("model_name") for m in health if isinstance(m, dict)} \
        if isinstance(health, list) else set()
    return [SeenModel(mid, capabilities_from_name(mid), mid in loaded)
            for mid, _ in _ids(answer(a, "/api/v1/models").items())]


LEMONADE_MODELS: Models = Reader(
    frozenset({Probe("/api/v1/models"), Probe("/api/v1/health")}), _lemonade)


def _textgen(a: Answers) -> list[SeenModel]:
    current = answer(a, "/v1/internal/model/info").obj().get("model_name")
    current = current if isinstance(current, str) and current not in ("", "None") else None
    ids = [mid for mid, _ in _ids(answer(a, "/v1/models").items())]
    if current and current not in ids:
        ids.insert(0, current)
    return [SeenModel(mid, capabilities_from_name(mid), mid == current) for mid in ids]


TEXTGEN_MODELS: Models = Reader(
    frozenset({Probe("/v1/models"), Probe("/v1/internal/model/info")}), _textgen)
