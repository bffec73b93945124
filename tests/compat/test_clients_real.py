"""The real clients against the gateway in front of real engines: the embedded llama.cpp
engine (bundled SmolLM2-135M) and llama.cpp's own llama-server (local tier). One test per
backend, so each engine starts once; each checks a short, bounded answer per client."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import openai
import pytest

from localinfer import AsyncClient, Settings
from localinfer.gateway import create_app
from tests.gateway_harness import RunApp
from tests.support.embedded_gateway import engine, url
from tests.support.lazy import LazyModule

__all__ = ["engine", "url"]  # the fixtures (tests/support/embedded_gateway.py), used by name

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download
litellm = LazyModule("litellm")
llm = LazyModule("llm")
langchain_ollama = LazyModule("langchain_ollama")

pytestmark = pytest.mark.integration
compat = pytest.mark.compat
MESSAGES: Any = [{"role": "user", "content": "Say hello."}]
LIMIT = 4


def drive_clients(gateway: str, model: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = openai.OpenAI(base_url=gateway + "/v1", api_key="x", max_retries=0, timeout=300)
    reply = sdk.chat.completions.create(model=model, messages=MESSAGES, temperature=0,
                                        max_completion_tokens=LIMIT)
    assert reply.choices[0].message.content is not None
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= LIMIT
    listed = {m.id for m in sdk.models.list().data}
    assert sdk.models.retrieve(model).id in listed | {"default"}  # an alias: its card

    via_openai = litellm.completion(model=f"openai/{model}", api_base=gateway + "/v1",
                                    api_key="x", messages=MESSAGES, max_tokens=LIMIT)
    assert via_openai.usage.completion_tokens <= LIMIT
    via_ollama = litellm.completion(model=f"ollama_chat/{model}", api_base=gateway,
                                    messages=MESSAGES, max_tokens=LIMIT)
    assert via_ollama.choices[0].message.content is not None

    chat = langchain_ollama.ChatOllama(model=model, base_url=gateway, num_predict=LIMIT)
    assert isinstance(chat.invoke("Say hello.").content, str)

    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: localinfer\n  model_name: {model}\n  api_base: {gateway}/v1\n")
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    response = llm.get_model("localinfer").prompt("Say hello.", max_tokens=LIMIT)
    assert isinstance(response.text(), str)


@compat("openai", "chat", "embedded")
@compat("openai", "max tokens", "embedded")
@compat("openai", "usage", "embedded")
@compat("openai", "model list", "embedded")
@compat("litellm", "chat", "embedded")
@compat("litellm", "ollama chat", "embedded")
@compat("langchain-ollama", "ollama chat", "embedded")
@compat("llm", "chat", "embedded")
@compat("openai", "model retrieve", "embedded")
@compat("litellm", "usage", "embedded")
@compat("litellm", "max tokens", "embedded")
def test_clients_on_the_embedded_engine(url: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    drive_clients(url, "smollm2", tmp_path, monkeypatch)


@compat("openai", "max tokens", "llama-server")
@compat("litellm", "chat", "llama-server")
@compat("litellm", "ollama chat", "llama-server")
@compat("langchain-ollama", "ollama chat", "llama-server")
@compat("llm", "chat", "llama-server")
@compat("openai", "chat", "llama-server")
@compat("openai", "usage", "llama-server")
@compat("litellm", "usage", "llama-server")
@compat("litellm", "max tokens", "llama-server")
def test_clients_through_llama_server(run_app: RunApp, tmp_path: Path, llama_server: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server],
                        discovery_timeout=5.0)
    gateway = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    drive_clients(gateway, "default", tmp_path, monkeypatch)
