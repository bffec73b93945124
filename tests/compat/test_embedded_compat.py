"""The new routes over the real embedded engine (llama.cpp on the bundled SmolLM2-135M):
``/api/generate``, ``/v1/completions`` with ``include_usage``, and ``/api/tags`` digests
of the real GGUF file."""

from __future__ import annotations

import hashlib

import ollama
import openai
import pytest

from localinfer.backends.embedded import EmbeddedBackend
from tests.test_gateway_embedded import engine, url

__all__ = ["engine", "url"]  # the fixtures, shared with test_gateway_embedded, used by name

pytestmark = pytest.mark.integration




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


@pytest.mark.compat("openai", "/v1/completions stream", "embedded")
@pytest.mark.compat("openai", "n>1, logprobs, forced tools",
                    "embedded", refused="400 naming the parameter (embedded tier)")
def test_legacy_completion_stream_with_usage_on_the_embedded_engine(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
    chunks = list(client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=6, temperature=0,
        stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert 0 < usage.completion_tokens <= 6 and usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.chat.completions.create(model="smollm2", logprobs=True, max_tokens=2,
                                       messages=[{"role": "user", "content": "hi"}])
