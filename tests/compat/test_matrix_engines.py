"""Matrix cells over the real engines: one module-scoped gateway over the embedded engine
(llama.cpp on the bundled SmolLM2-135M) and one over the session's llama-server, and one
small test per (client, operation, backend) cell, a few tokens each. Each cell is its own
test (its own ``compat`` mark), so one failing assertion marks only its own cell ✗."""

from __future__ import annotations

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
from localinfer.gateway import create_app
from tests.fakes.serve import AppServer
from tests.gateway_harness import client_over, gateway_settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download

langchain_openai = pytest.importorskip("langchain_openai")
langchain_ollama = pytest.importorskip("langchain_ollama")
litellm = pytest.importorskip("litellm")
llm = pytest.importorskip("llm")

pytestmark = pytest.mark.integration

E, L = "embedded", "llama-server"
# Per backend: the fixture serving its gateway and the model name clients ask for.
TARGETS = {E: ("embedded_gateway", "smollm2"), L: ("server_gateway", "default")}
MESSAGES: Any = [{"role": "user", "content": "Say hello."}]
COUNT: Any = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
SCHEMA: Any = {"type": "object", "properties": {"answer": {"type": "string"}},
               "required": ["answer"]}
TOOLS: Any = [{"type": "function", "function": {
    "name": "weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


@pytest.fixture(scope="module")
def embedded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp")
    home = tmp_path_factory.mktemp("engines-embedded")
    engine = EmbeddedBackend(gateway_settings(home, embedded_threads=2))
    settings = gateway_settings(home, embedded_threads=2)
    server = AppServer(create_app(settings, client_over(settings, [engine])), 0).start()
    try:
        yield server.base_url
    finally:
        server.stop()
        engine._discard(engine._worker)  # stop the worker process


@pytest.fixture(scope="module")
def server_gateway(tmp_path_factory: pytest.TempPathFactory, llama_server: str) -> Iterator[str]:
    home = tmp_path_factory.mktemp("engines-llama-server")
    settings = Settings(home=home, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    server = AppServer(create_app(settings, AsyncClient(settings), close_client=True),
                       0).start()
    try:
        yield server.base_url
    finally:
        server.stop()


Body = Callable[..., None]


def cell(client: str, operation: str, *backends: str,
         refused: str | None = None) -> Callable[[Body], Body]:
    """Register ``body(url, model[, tmp_path, monkeypatch])`` as one test per backend,
    each with its own compat mark."""
    def register(body: Body) -> Body:
        for backend in backends:
            slug = re.sub(r"\W+", "_", f"{operation}_{backend}").strip("_").lower()
            globals()[f"test_{body.__name__}_{slug}"] = \
                pytest.mark.compat(client, operation, backend, refused=refused)(
                    _test(body, backend))
        return body
    return register


def _test(body: Body, backend: str) -> Callable[..., None]:
    def test(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> None:
        fixture, model = TARGETS[backend]
        url = request.getfixturevalue(fixture)
        wants = body.__code__.co_varnames[:body.__code__.co_argcount]
        extra = {"tmp_path": tmp_path, "monkeypatch": monkeypatch}
        body(url, model, **{k: v for k, v in extra.items() if k in wants})
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


@cell("openai", "n>1, logprobs, forced tools", E,
      refused="400 naming the parameter (embedded tier)")
def openai_refusals(url: str, model: str) -> None:
    client = sdk(url)
    asks: list[dict[str, Any]] = [
        {"n": 2}, {"logprobs": True}, {"top_logprobs": 2, "logprobs": True},
        {"tools": TOOLS, "tool_choice": "required"},
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "weather"}}}]
    for ask in asks:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=2,
                                           **ask)
        body = info.value.body
        assert isinstance(body, dict) and body["param"] in ask, (ask, body)
        assert "embedded tier" in body["message"]


# -- ollama ------------------------------------------------------------------------------

@cell("ollama", "ollama chat", E)
def ollama_chat(url: str, model: str) -> None:
    reply = oll(url).chat(model=model, messages=MESSAGES,
                          options={"num_predict": 6, "temperature": 0})
    assert reply.done and (reply.message.content or "").strip()


@cell("ollama", "ollama stream", E)
def ollama_stream(url: str, model: str) -> None:
    parts = list(oll(url).chat(model=model, messages=MESSAGES, stream=True,
                               options={"num_predict": 6, "temperature": 0}))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts).strip()


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


@cell("langchain-openai", "n>1, logprobs, forced tools", E,
      refused="400 naming the parameter (embedded tier)")
def lc_openai_refusals(url: str, model: str) -> None:
    for options in ({"n": 2}, {"logprobs": True}):
        with pytest.raises(openai.BadRequestError) as info:
            chat_openai(url, model, max_tokens=2, **options).invoke("hi")
        body = info.value.body
        assert isinstance(body, dict) and body["param"] in options
    with pytest.raises(openai.BadRequestError) as forced:
        chat_openai(url, model, max_tokens=2).bind_tools(
            TOOLS, tool_choice="weather").invoke("weather in Oslo?")
    assert isinstance(forced.value.body, dict) and forced.value.body["param"] == "tool_choice"


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


@cell("litellm", "n>1, logprobs, forced tools", E,
      refused="400 naming the parameter (embedded tier)")
def litellm_refusals(url: str, model: str) -> None:
    asks: list[dict[str, Any]] = [{"n": 2}, {"logprobs": True},
                                  {"tools": TOOLS, "tool_choice": "required"}]
    for ask in asks:
        with pytest.raises(litellm.BadRequestError) as info:
            complete(url, model, max_tokens=2, **ask)
        assert info.value.status_code == 400 and "embedded tier" in str(info.value)


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
