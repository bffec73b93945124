"""Real clients (pinned in the ``test`` extra) against the gateway over the scripted
backends: litellm's ``openai/``, ``ollama/`` and ``ollama_chat/`` providers, simonw's
``llm`` (an OpenAI-compatible model from extra-openai-models.yaml, and the ``llm-ollama``
plugin) and ``langchain-ollama``. Each test marks the matrix cells it proves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from localinfer.types import ChatRequest, ChatStream, Usage
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import default_backends
from tests.support.lazy import LazyModule

# litellm fetches a model-price map from GitHub on import unless told not to: tests
# talk to loopback only.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

compat = pytest.mark.compat
S = "scripted"
MESSAGES: Any = [{"role": "user", "content": "hi"}]


class CountingBackend(FakeBackend):
    """The scripted backend, reporting usage on its last chunk as real servers do (some
    clients read usage from every answer)."""

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        pieces = 0
        async for chunk in super().stream_chat(request, model):
            pieces += sum(1 for c in chunk.choices if c.delta.content)
            if any(c.finish_reason for c in chunk.choices):
                chunk = chunk.model_copy(update={"usage": Usage(
                    prompt_tokens=1, completion_tokens=pieces, total_tokens=1 + pieces)})
            yield chunk


@pytest.fixture
def backends() -> list[FakeBackend]:
    chat = CountingBackend("fake-chat", tier="embedded", model_ids=("fake-model",))
    return [chat, *default_backends()[1:]]  # type: ignore[list-item]


# -- litellm ---------------------------------------------------------------------------

litellm = LazyModule("litellm")


@compat("litellm", "chat", S)
@compat("litellm", "stream", S)
@compat("litellm", "usage", S)
def test_litellm_openai_provider(gateway: str, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Hi", " there"])).enqueue(Script(chunks=["a", "b"]))
    reply = litellm.completion(model="openai/fake-model", api_base=gateway + "/v1",
                               api_key="x", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].message.content == "Hi there"
    assert reply.usage.completion_tokens == 2
    chunks = list(litellm.completion(model="openai/fake-model", api_base=gateway + "/v1",
                                     api_key="x", messages=MESSAGES, stream=True,
                                     stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    usage: list[Any] = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usage and usage[-1].completion_tokens == 2


@compat("litellm", "embeddings", S)
def test_litellm_openai_embeddings(gateway: str) -> None:
    reply = litellm.embedding(model="openai/fake-embedder", api_base=gateway + "/v1",
                              api_key="x", input=["abc"])
    assert reply.data[0]["embedding"] == [3.0, 1.0]


@compat("litellm", "errors: unknown model", S)
def test_litellm_unknown_model_is_not_found(gateway: str) -> None:
    with pytest.raises(litellm.NotFoundError):
        litellm.completion(model="openai/no-such-model", api_base=gateway + "/v1",
                           api_key="x", messages=MESSAGES, max_retries=0)


@compat("litellm", "/api/generate", S)
def test_litellm_ollama_provider_uses_generate(gateway: str,
                                               backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Paris"]))
    reply = litellm.completion(model="ollama/fake-model", api_base=gateway,
                               messages=MESSAGES)
    assert reply.choices[0].message.content == "Paris"


@compat("litellm", "ollama chat", S)
@compat("litellm", "ollama stream", S)
def test_litellm_ollama_chat_provider(gateway: str, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["ok"])).enqueue(Script(chunks=["x", "y"]))
    reply = litellm.completion(model="ollama_chat/fake-model", api_base=gateway,
                               messages=MESSAGES)
    assert reply.choices[0].message.content == "ok"
    chunks = list(litellm.completion(model="ollama_chat/fake-model", api_base=gateway,
                                     messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "xy"


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
    monkeypatch.setenv("OLLAMA_HOST", gateway)
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    return home


@compat("llm", "chat", S)
@compat("llm", "stream", S)
def test_llm_with_an_openai_compatible_model(llm_home: Path,
                                             backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Hello", "!"])).enqueue(Script(chunks=["s", "t"]))
    model = llm.get_model("localinfer")
    assert model.prompt("hi", stream=False).text() == "Hello!"
    assert "".join(model.prompt("hi")) == "st"


@compat("llm", "ollama chat", S)
@compat("llm", "embeddings", S)
@compat("llm", "model list", S)
def test_llm_ollama_plugin(llm_home: Path, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["via", " ollama"]))
    # llm-ollama 0.19 names Ollama's models ollama/NAME; distinct digests keep the chat
    # and embedding models apart.
    assert "ollama/fake-model" in {m.model_id for m in llm.get_models()}
    assert llm.get_model("ollama/fake-model").prompt("hi").text() == "via ollama"
    embedder = llm.get_embedding_model("ollama/fake-embedder")
    assert embedder.embed("abc") == [3.0, 1.0]


# -- langchain-ollama --------------------------------------------------------------------

langchain_ollama = LazyModule("langchain_ollama")


@compat("langchain-ollama", "ollama chat", S)
@compat("langchain-ollama", "ollama stream", S)
def test_chat_ollama(gateway: str, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Hi"])).enqueue(Script(chunks=["a", "b"]))
    chat = langchain_ollama.ChatOllama(model="fake-model", base_url=gateway)
    assert chat.invoke("hello").content == "Hi"
    assert "".join(str(p.content) for p in chat.stream("count")) == "ab"


@compat("langchain-ollama", "/api/generate", S)
def test_ollama_llm_uses_generate(gateway: str, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["text"]))
    assert langchain_ollama.OllamaLLM(model="fake-model", base_url=gateway).invoke("p") \
        == "text"


@compat("langchain-ollama", "embeddings", S)
def test_ollama_embeddings(gateway: str) -> None:
    embedder = langchain_ollama.OllamaEmbeddings(model="fake-embedder", base_url=gateway)
    assert embedder.embed_query("abc") == pytest.approx([3.0, 1.0])


