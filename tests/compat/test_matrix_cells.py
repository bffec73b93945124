"""Matrix cells the other compat tests leave open: each real client's chat options (max
tokens, seed, stop, JSON mode and schema), tool calls, model lists and errors over the
scripted backends (the request the backend receives is recorded and checked), and a few
cheap cells over the real llama-server (session-scoped, a handful of tokens each)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from localinfer import AsyncClient, Settings
from localinfer.gateway import create_app
from localinfer.types import ChatChunk, ChatRequest, ChatStream, ChunkChoice, Delta, Usage
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import RunApp, default_backends
from tests.support.lazy import LazyModule

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download

compat = pytest.mark.compat
S = "scripted"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
TOOLS: Any = [{"type": "function", "function": {
    "name": "weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
SCHEMA: Any = {"type": "object", "properties": {"answer": {"type": "string"}},
               "required": ["answer"]}


class Recording(FakeBackend):
    """The scripted chat backend, recording each request it gets; ``tool_call()`` makes its
    next answer a streamed ``weather(city="Oslo")`` call; usage on the last chunk."""

    def __init__(self) -> None:
        super().__init__("fake-chat", tier="embedded", model_ids=("fake-model",))
        self.seen: list[dict[str, Any]] = []
        self.tool_calls = 0

    def tool_call(self) -> Recording:
        self.tool_calls += 1
        return self

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        self.seen.append(request.model_dump(exclude_none=True))
        if self.tool_calls:
            self.tool_calls -= 1
            self.calls.append(("chat", model))
            call = {"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": '}}
            more = {"index": 0, "function": {"arguments": '"Oslo"}'}}
            for delta in (call, more):
                yield ChatChunk(model=model, choices=[
                    ChunkChoice(delta=Delta(tool_calls=[delta]))])
            yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="tool_calls")])
            return
        pieces = 0
        async for chunk in super().stream_chat(request, model):
            pieces += sum(1 for c in chunk.choices if c.delta.content)
            if any(c.finish_reason for c in chunk.choices):
                chunk = chunk.model_copy(update={"usage": Usage(
                    prompt_tokens=1, completion_tokens=pieces, total_tokens=1 + pieces)})
            yield chunk


@pytest.fixture
def backends() -> list[FakeBackend]:
    return [Recording(), *default_backends()[1:]]  # type: ignore[list-item]


@pytest.fixture
def chat(backends: list[FakeBackend]) -> Recording:
    backend = backends[0]
    assert isinstance(backend, Recording)
    return backend


# -- openai ------------------------------------------------------------------------------

@compat("openai", "chat", S)
@compat("openai", "max tokens", S)
def test_openai_chat_and_max_tokens(oai: openai.OpenAI, chat: Recording) -> None:
    chat.enqueue(Script(chunks=["Hi", " there"]))
    reply = oai.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].message.content == "Hi there"
    assert reply.choices[0].finish_reason == "stop"
    assert chat.seen[0]["max_tokens"] == 5


@compat("openai", "seed", S)
@compat("openai", "stop", S)
def test_openai_seed_and_stop(oai: openai.OpenAI, chat: Recording) -> None:
    reply = oai.chat.completions.create(model="fake-model", messages=MESSAGES, seed=42,
                                        stop=["\n\n", "END"])
    assert reply.choices[0].message.content == "hello world"
    assert chat.seen[0]["seed"] == 42 and chat.seen[0]["stop"] == ["\n\n", "END"]


@compat("openai", "JSON mode", S)
@compat("openai", "JSON schema", S)
def test_openai_json_mode_and_schema(oai: openai.OpenAI, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": ', '"yes"}']))
    reply = oai.chat.completions.create(model="fake-model", messages=MESSAGES,
                                        response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content or "") == {"answer": "yes"}
    schema: Any = {"type": "json_schema",
                   "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}}
    chat.enqueue(Script(chunks=['{"answer": "no"}']))
    again = oai.chat.completions.create(model="fake-model", messages=MESSAGES,
                                        response_format=schema)
    assert json.loads(again.choices[0].message.content or "") == {"answer": "no"}
    assert chat.seen[0]["response_format"] == {"type": "json_object"}
    assert chat.seen[1]["response_format"]["json_schema"]["schema"] == SCHEMA


@compat("openai", "tools", S)
def test_openai_tool_call(oai: openai.OpenAI, chat: Recording) -> None:
    chat.tool_call()
    reply = oai.chat.completions.create(model="fake-model", messages=MESSAGES, tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert chat.seen[0]["tools"] == TOOLS


@compat("openai", "model list", S)
def test_openai_model_list(oai: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in oai.models.list()}
    assert models == {"fake-model": "fake-chat", "fake-embedder": "fake-embed"}


@compat("openai", "errors: unknown model", S)
def test_openai_unknown_model(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.status_code == 404
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "model"
    assert "fake-model" in body["message"]


@compat("openai", "errors: bad body", S)
def test_openai_bad_body(oai: openai.OpenAI, chat: Recording) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="fake-model", messages=[])
    assert info.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="fake-model", messages=MESSAGES, temperature=7)
    assert chat.seen == []


# -- ollama ------------------------------------------------------------------------------

@compat("ollama", "ollama stream", S)
@compat("ollama", "max tokens", S)
@compat("ollama", "seed", S)
@compat("ollama", "stop", S)
def test_ollama_stream_with_options(oll: ollama.Client, chat: Recording) -> None:
    chat.enqueue(Script(chunks=["a", "b", "c"]))
    parts = list(oll.chat(model="fake-model", messages=MESSAGES, stream=True,
                          options={"num_predict": 7, "seed": 3, "stop": ["\n"]}))
    assert "".join(p.message.content or "" for p in parts) == "abc"
    assert [p.done for p in parts] == [False, False, False, True]
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == 3
    seen = chat.seen[0]
    assert seen["max_tokens"] == 7 and seen["seed"] == 3 and seen["stop"] == ["\n"]


@compat("ollama", "JSON mode", S)
@compat("ollama", "JSON schema", S)
def test_ollama_format_json_and_schema(oll: ollama.Client, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": "yes"}'])).enqueue(Script(chunks=['{"answer": "no"}']))
    reply = oll.chat(model="fake-model", messages=MESSAGES, format="json")
    assert json.loads(reply.message.content or "") == {"answer": "yes"}
    again = oll.chat(model="fake-model", messages=MESSAGES, format=SCHEMA)
    assert json.loads(again.message.content or "") == {"answer": "no"}
    assert chat.seen[0]["response_format"] == {"type": "json_object"}
    assert chat.seen[1]["response_format"]["type"] == "json_schema"
    assert chat.seen[1]["response_format"]["json_schema"]["schema"] == SCHEMA


@compat("ollama", "tools", S)
def test_ollama_tool_call(oll: ollama.Client, chat: Recording) -> None:
    chat.tool_call()
    reply = oll.chat(model="fake-model", messages=MESSAGES, tools=TOOLS)
    assert reply.message.tool_calls
    call = reply.message.tool_calls[0]
    assert call.function.name == "weather" and call.function.arguments == {"city": "Oslo"}
    assert chat.seen[0]["tools"][0]["function"]["name"] == "weather"


@compat("ollama", "errors: unknown model", S)
def test_ollama_unknown_model(oll: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oll.chat(model="no-such-model", messages=MESSAGES)
    assert info.value.status_code == 404 and "fake-model" in info.value.error


@compat("ollama", "errors: bad body", S)
def test_ollama_bad_body(gateway: str, chat: Recording) -> None:
    # An option out of range, through the client: a 400 ResponseError naming it.
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=gateway, timeout=60).chat(model="fake-model", messages=MESSAGES,
                                                     options={"temperature": 7})
    assert info.value.status_code == 400 and "temperature" in info.value.error
    # A body the client would not build (messages not a list), sent raw.
    response = httpx.post(gateway + "/api/chat", json={"model": "fake-model",
                                                       "messages": "hi"}, timeout=60)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["error"], str)
    assert chat.seen == []


# -- langchain-openai ---------------------------------------------------------------------

langchain_openai = LazyModule("langchain_openai")


def chat_openai(gateway: str, **options: Any) -> Any:
    return langchain_openai.ChatOpenAI(base_url=gateway + "/v1", api_key="unused",
                                       model="fake-model", max_retries=0, timeout=60,
                                       **options)


@compat("langchain-openai", "usage", S)
@compat("langchain-openai", "seed", S)
@compat("langchain-openai", "stop", S)
def test_langchain_openai_usage_seed_stop(gateway: str, chat: Recording) -> None:
    chat.enqueue(Script(chunks=["a", "b", "c"]))
    reply = chat_openai(gateway, seed=7, stop_sequences=["END"]).invoke("hello")
    assert reply.content == "abc"
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] == 3
    assert chat.seen[0]["seed"] == 7 and chat.seen[0]["stop"] == ["END"]


@compat("langchain-openai", "JSON mode", S)
@compat("langchain-openai", "JSON schema", S)
def test_langchain_openai_json(gateway: str, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": "yes"}'])).enqueue(Script(chunks=['{"answer": "no"}']))
    json_mode = chat_openai(gateway).with_structured_output(method="json_mode")
    assert json_mode.invoke("answer in JSON") == {"answer": "yes"}
    schema = {"title": "reply", "description": "A reply", **SCHEMA}
    structured = chat_openai(gateway).with_structured_output(schema, method="json_schema")
    assert structured.invoke("answer") == {"answer": "no"}
    assert chat.seen[0]["response_format"] == {"type": "json_object"}
    assert chat.seen[1]["response_format"]["type"] == "json_schema"


@compat("langchain-openai", "tools", S)
def test_langchain_openai_tools(gateway: str, chat: Recording) -> None:
    chat.tool_call()
    reply = chat_openai(gateway).bind_tools(TOOLS).invoke("weather in Oslo?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("weather", {"city": "Oslo"})]
    assert chat.seen[0]["tools"][0]["function"]["name"] == "weather"


@compat("langchain-openai", "embeddings", S)
def test_langchain_openai_embeddings(gateway: str) -> None:
    embedder = langchain_openai.OpenAIEmbeddings(
        base_url=gateway + "/v1", api_key="unused", model="fake-embedder",
        check_embedding_ctx_length=False, max_retries=0)
    assert embedder.embed_query("abc") == pytest.approx([3.0, 1.0])
    assert embedder.embed_documents(["a", "bb"]) == [pytest.approx([1.0, 1.0]),
                                                     pytest.approx([2.0, 1.0])]


@compat("langchain-openai", "errors: unknown model", S)
def test_langchain_openai_unknown_model(gateway: str) -> None:
    llm = langchain_openai.ChatOpenAI(base_url=gateway + "/v1", api_key="unused",
                                      model="no-such-model", max_retries=0, timeout=60)
    with pytest.raises(openai.NotFoundError) as info:
        llm.invoke("hi")
    assert info.value.status_code == 404


# -- langchain-ollama ---------------------------------------------------------------------

langchain_ollama = LazyModule("langchain_ollama")


@compat("langchain-ollama", "max tokens", S)
@compat("langchain-ollama", "seed", S)
@compat("langchain-ollama", "stop", S)
@compat("langchain-ollama", "JSON mode", S)
def test_langchain_ollama_options(gateway: str, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": "yes"}']))
    model = langchain_ollama.ChatOllama(model="fake-model", base_url=gateway, num_predict=6,
                                        seed=5, stop=["END"], format="json")
    assert json.loads(str(model.invoke("hi").content)) == {"answer": "yes"}
    seen = chat.seen[0]
    assert seen["max_tokens"] == 6 and seen["seed"] == 5 and seen["stop"] == ["END"]
    assert seen["response_format"] == {"type": "json_object"}


@compat("langchain-ollama", "tools", S)
def test_langchain_ollama_tools(gateway: str, chat: Recording) -> None:
    chat.tool_call()
    model = langchain_ollama.ChatOllama(model="fake-model", base_url=gateway)
    reply = model.bind_tools(TOOLS).invoke("weather in Oslo?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("weather", {"city": "Oslo"})]


@compat("langchain-ollama", "errors: unknown model", S)
def test_langchain_ollama_unknown_model(gateway: str) -> None:
    model = langchain_ollama.ChatOllama(model="no-such-model", base_url=gateway)
    with pytest.raises(ollama.ResponseError) as info:
        model.invoke("hi")
    assert info.value.status_code == 404


# -- litellm -----------------------------------------------------------------------------

litellm = LazyModule("litellm")


@compat("litellm", "max tokens", S)
@compat("litellm", "seed", S)
@compat("litellm", "stop", S)
def test_litellm_options(gateway: str, chat: Recording) -> None:
    reply = litellm.completion(model="openai/fake-model", api_base=gateway + "/v1",
                               api_key="x", messages=MESSAGES, max_tokens=5, seed=11,
                               stop=["END"])
    assert reply.choices[0].message.content == "hello world"
    seen = chat.seen[0]
    assert seen["max_tokens"] == 5 and seen["seed"] == 11 and seen["stop"] == ["END"]


@compat("litellm", "JSON mode", S)
def test_litellm_json_mode(gateway: str, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": "yes"}']))
    reply = litellm.completion(model="openai/fake-model", api_base=gateway + "/v1",
                               api_key="x", messages=MESSAGES,
                               response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"answer": "yes"}
    assert chat.seen[0]["response_format"] == {"type": "json_object"}


@compat("litellm", "JSON schema", S)
def test_litellm_json_schema(gateway: str, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": "no"}']))
    schema: Any = {"type": "json_schema",
                   "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}}
    reply = litellm.completion(model="openai/fake-model", api_base=gateway + "/v1",
                               api_key="x", messages=MESSAGES, response_format=schema)
    assert json.loads(reply.choices[0].message.content) == {"answer": "no"}
    assert chat.seen[0]["response_format"]["json_schema"]["schema"] == SCHEMA


@compat("litellm", "tools", S)
def test_litellm_tools(gateway: str, chat: Recording) -> None:
    chat.tool_call()
    reply = litellm.completion(model="openai/fake-model", api_base=gateway + "/v1",
                               api_key="x", messages=MESSAGES, tools=TOOLS)
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}


@compat("litellm", "errors: bad body", S)
def test_litellm_bad_body(gateway: str, chat: Recording) -> None:
    with pytest.raises(litellm.BadRequestError) as info:
        litellm.completion(model="openai/fake-model", api_base=gateway + "/v1", api_key="x",
                           messages=MESSAGES, temperature=7, max_retries=0)
    assert info.value.status_code == 400
    assert chat.seen == []


# -- n, logprobs and forced tool calls: passed to the backend, never dropped -----------

# The gateway neither refuses nor drops them: the serving engine honours them (llama.cpp,
# on both engines: tests/compat/test_matrix_engines.py) or answers its own error. Here the
# scripted backend records what it got; for a forced call it answers one, which the
# client parses.
NAMED: Any = {"type": "function", "function": {"name": "weather"}}
FORWARDED: list[dict[str, Any]] = [
    {"n": 2}, {"logprobs": True, "top_logprobs": 2}, {"tool_choice": "required"},
    {"tool_choice": NAMED}]


def _openai_sdk(url: str, ask: dict[str, Any]) -> list[str]:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
    tools = {"tools": TOOLS} if "tool_choice" in ask else {}
    reply = client.chat.completions.create(model="fake-model", messages=MESSAGES,
                                           **tools, **ask)
    return [c.function.name for c in reply.choices[0].message.tool_calls or []
            if c.type == "function"]


def _langchain_openai(url: str, ask: dict[str, Any]) -> list[str]:
    if "tool_choice" not in ask:
        chat_openai(url, **ask).invoke("hi")
        return []
    choice = ask["tool_choice"]  # LangChain names a tool by its name, "any" is "required"
    name = "any" if choice == "required" else choice["function"]["name"]
    reply = chat_openai(url).bind_tools(TOOLS, tool_choice=name).invoke("hi")
    return [c["name"] for c in reply.tool_calls]


def _litellm(url: str, ask: dict[str, Any]) -> list[str]:
    tools = {"tools": TOOLS} if "tool_choice" in ask else {}
    reply = litellm.completion(model="openai/fake-model", api_base=url + "/v1", api_key="x",
                               messages=MESSAGES, max_retries=0, **tools, **ask)
    return [c.function.name for c in reply.choices[0].message.tool_calls or []]


FORWARDING: dict[str, Callable[[str, dict[str, Any]], list[str]]] = {
    "openai": _openai_sdk, "langchain-openai": _langchain_openai, "litellm": _litellm}


@compat("openai", "n>1, logprobs, forced tools", S)
@compat("openai", "forced tools: named function", S)
@compat("langchain-openai", "n>1, logprobs, forced tools", S)
@compat("litellm", "n>1, logprobs, forced tools", S)
def test_n_logprobs_and_forced_tools_reach_the_backend(gateway: str, chat: Recording) -> None:
    for client, call in FORWARDING.items():
        for ask in FORWARDED:
            forced = "tool_choice" in ask
            if forced:
                chat.tool_call()
            before = len(chat.seen)
            names = call(gateway, ask)
            assert len(chat.seen) == before + 1, (client, ask)
            seen = chat.seen[-1]
            assert {k: seen.get(k) for k in ask} == ask, (client, ask, seen)
            assert names == (["weather"] if forced else []), (client, ask)
            if forced:
                assert [t["function"]["name"] for t in seen["tools"]] == ["weather"]


# -- simonw's llm ------------------------------------------------------------------------

llm = LazyModule("llm")


@pytest.fixture
def llm_home(tmp_path: Path, gateway: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "llm"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        "- model_id: localinfer\n  model_name: fake-model\n"
        f"  api_base: {gateway}/v1\n")
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    return home


@compat("llm", "max tokens", S)
@compat("llm", "seed", S)
@compat("llm", "stop", S)
def test_llm_options(llm_home: Path, chat: Recording) -> None:
    chat.enqueue(Script(chunks=["ok"]))
    model = llm.get_model("localinfer")
    assert model.prompt("hi", stream=False, max_tokens=5, seed=9, stop="END").text() == "ok"
    seen = chat.seen[0]
    assert seen["max_tokens"] == 5 and seen["seed"] == 9 and seen["stop"] == "END"


@compat("llm", "JSON mode", S)
def test_llm_json_object(llm_home: Path, chat: Recording) -> None:
    chat.enqueue(Script(chunks=['{"answer": "yes"}']))
    model = llm.get_model("localinfer")
    text = model.prompt("hi", stream=False, json_object=True).text()
    assert json.loads(text) == {"answer": "yes"}
    assert chat.seen[0]["response_format"] == {"type": "json_object"}


@compat("llm", "errors: unknown model", S)
def test_llm_unknown_model(tmp_path: Path, gateway: str,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "llm-missing"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: missing\n  model_name: no-such-model\n  api_base: {gateway}/v1\n")
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    with pytest.raises(openai.NotFoundError) as info:
        llm.get_model("missing").prompt("hi", stream=False).text()
    assert info.value.status_code == 404


# -- llama-server (the session's server; a few tokens per call) ---------------------------

@pytest.mark.integration
@compat("openai", "/v1/completions stream", "llama-server")
@compat("openai", "seed", "llama-server")
@compat("ollama", "ollama chat", "llama-server")
@compat("ollama", "ollama stream", "llama-server")
@compat("ollama", "model list", "llama-server")
@compat("ollama", "/api/generate", "llama-server")
@compat("ollama", "errors: unknown model", "llama-server")
@compat("ollama", "max tokens", "llama-server")
@compat("openai", "errors: unknown model", "llama-server")
def test_more_cells_through_llama_server(run_app: RunApp, tmp_path: Path,
                                        llama_server: str) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    url = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    chunks = list(sdk.completions.create(model="default", prompt="Hello", max_tokens=4,
                                         temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    seeded = [sdk.chat.completions.create(model="default", messages=MESSAGES, max_tokens=4,
                                          seed=1234, temperature=1.0)
              .choices[0].message.content for _ in range(2)]
    assert seeded[0] and seeded[0] == seeded[1]  # the same seed, the same sample
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=2)

    client = ollama.Client(host=url, timeout=300)
    reply = client.chat(model="default", messages=MESSAGES,
                        options={"num_predict": 4, "temperature": 0})
    assert reply.done and reply.message.content is not None
    assert reply.eval_count and reply.eval_count <= 4
    parts = list(client.chat(model="default", messages=MESSAGES, stream=True,
                             options={"num_predict": 4, "temperature": 0}))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts).strip()
    assert client.list().models
    generated = client.generate(model="default", prompt="Hello",
                                options={"num_predict": 4, "temperature": 0})
    assert generated.done and (generated.response or "").strip()
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="no-such-model", messages=MESSAGES)
    assert info.value.status_code == 404


@pytest.mark.integration
@compat("openai", "stop", "llama-server")
@compat("openai", "JSON mode", "llama-server")
@compat("langchain-openai", "chat", "llama-server")
@compat("langchain-openai", "stream", "llama-server")
@compat("litellm", "stream", "llama-server")
@compat("llm", "stream", "llama-server")
def test_options_and_streams_through_llama_server(
        run_app: RunApp, tmp_path: Path, llama_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    url = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    count: Any = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    free = sdk.chat.completions.create(model="default", messages=count, max_tokens=8,
                                       temperature=0).choices[0].message.content or ""
    assert "," in free  # without stop the model does write one
    stopped = sdk.chat.completions.create(model="default", messages=count, max_tokens=8,
                                          temperature=0, stop=[","]).choices[0]
    assert "," not in (stopped.message.content or "") and stopped.finish_reason == "stop"
    as_json = sdk.chat.completions.create(
        model="default", max_tokens=8, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Reply in JSON."}]).choices[0].message.content
    assert (as_json or "").lstrip().startswith("{")  # grammar-constrained from the start

    lc = langchain_openai.ChatOpenAI(base_url=url + "/v1", api_key="x", model="default",
                                     max_tokens=4, temperature=0, max_retries=0, timeout=300)
    assert isinstance(lc.invoke("Say hello.").content, str)
    assert "".join(str(p.content) for p in lc.stream("Say hello.")).strip()

    chunks = list(litellm.completion(model="openai/default", api_base=url + "/v1",
                                     api_key="x", messages=MESSAGES, max_tokens=4,
                                     temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()

    home = tmp_path / "llm"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: localinfer\n  model_name: default\n  api_base: {url}/v1\n")
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    pieces = list(llm.get_model("localinfer").prompt("Say hello.", max_tokens=4))
    assert "".join(pieces).strip()


@pytest.mark.integration
@compat("openai", "errors: bad body", "llama-server")
@compat("ollama", "errors: bad body", "llama-server")
@compat("litellm", "errors: unknown model", "llama-server")
@compat("litellm", "errors: bad body", "llama-server")
@compat("langchain-openai", "errors: unknown model", "llama-server")
@compat("langchain-ollama", "errors: unknown model", "llama-server")
@compat("ollama", "/api/copy, create, push",
        "llama-server", refused="501 naming the localinfer command")
@compat("ollama", "/api/generate raw, images, suffix, template, context",
        "llama-server", refused="400 naming the field")
def test_errors_and_refusals_through_llama_server(run_app: RunApp, tmp_path: Path,
                                                  llama_server: str) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    url = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="default", messages=[])
    assert bad.value.status_code == 400
    client = ollama.Client(host=url, timeout=300)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="default", messages=MESSAGES, options={"temperature": 7})
    assert info.value.status_code == 400 and "temperature" in info.value.error
    with pytest.raises(litellm.NotFoundError):
        litellm.completion(model="openai/no-such-model", api_base=url + "/v1", api_key="x",
                           messages=MESSAGES, max_retries=0)
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(model="openai/default", api_base=url + "/v1", api_key="x",
                           messages=MESSAGES, temperature=7, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        langchain_openai.ChatOpenAI(base_url=url + "/v1", api_key="x", model="no-such-model",
                                    max_retries=0, timeout=300).invoke("hi")
    with pytest.raises(ollama.ResponseError) as missing:
        langchain_ollama.ChatOllama(model="no-such-model", base_url=url).invoke("hi")
    assert missing.value.status_code == 404
    for path in ("/api/copy", "/api/create", "/api/push"):
        response = httpx.post(url + path, json={"model": "x"}, timeout=60)
        assert response.status_code == 501 and "localinfer" in response.json()["error"]
    for field, value in (("raw", True), ("suffix", "end"), ("context", [1, 2])):
        response = httpx.post(url + "/api/generate", json={
            "model": "default", "prompt": "hi", field: value}, timeout=60)
        assert response.status_code == 400 and field in response.json()["error"]


@pytest.mark.integration
@compat("langchain-openai", "max tokens", "llama-server")
@compat("langchain-openai", "usage", "llama-server")
@compat("langchain-ollama", "ollama stream", "llama-server")
@compat("langchain-ollama", "/api/generate", "llama-server")
@compat("litellm", "/api/generate", "llama-server")
@compat("litellm", "ollama stream", "llama-server")
def test_langchain_and_litellm_ollama_routes_through_llama_server(
        run_app: RunApp, tmp_path: Path, llama_server: str) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    url = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    reply = langchain_openai.ChatOpenAI(base_url=url + "/v1", api_key="x", model="default",
                                        max_tokens=4, temperature=0, max_retries=0,
                                        timeout=300).invoke("Say hello.")
    assert reply.usage_metadata and 0 < reply.usage_metadata["output_tokens"] <= 4
    chat = langchain_ollama.ChatOllama(model="default", base_url=url, num_predict=4,
                                       temperature=0)
    assert "".join(str(p.content) for p in chat.stream("Say hello.")).strip()
    generated = langchain_ollama.OllamaLLM(model="default", base_url=url, num_predict=4,
                                           temperature=0).invoke("Hello")
    assert isinstance(generated, str) and generated.strip()
    via_generate = litellm.completion(model="ollama/default", api_base=url, messages=MESSAGES,
                                      max_tokens=4, temperature=0)
    assert via_generate.choices[0].message.content
    chunks = list(litellm.completion(model="ollama_chat/default", api_base=url,
                                     messages=MESSAGES, max_tokens=4, temperature=0,
                                     stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


@pytest.mark.integration
@compat("openai", "/v1/completions suffix, n, logprobs",
        "llama-server", refused="400 naming the parameter")
@compat("llm", "model list", "llama-server")
@compat("llm", "ollama chat", "llama-server")
def test_completion_refusals_and_llm_ollama_through_llama_server(
        run_app: RunApp, tmp_path: Path, llama_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    url = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    for extra in ({"suffix": "y"}, {"n": 2}, {"logprobs": 1}):
        with pytest.raises(openai.BadRequestError) as info:
            sdk.completions.create(model="default", prompt="x", max_tokens=2,
                                   **extra)  # type: ignore[call-overload]
        body = info.value.body
        assert isinstance(body, dict) and body["param"] == next(iter(extra))
    home = tmp_path / "llm"
    home.mkdir()
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OLLAMA_HOST", url)
    ids = {m.model_id for m in llm.get_models()}
    names = sorted(i for i in ids if i.startswith("ollama/"))  # the server's model, aliased
    assert names, sorted(ids)
    name = names[0]
    text = llm.get_model(name).prompt("Say hello.", num_predict=4).text()
    assert isinstance(text, str) and text.strip()
