"""The real embedded engine (llama.cpp's server on the bundled SmolLM2-135M) served
through the gateway to the official ``openai`` SDK and the ``ollama`` client; a client
that leaves mid-stream frees its slot in the engine."""

from __future__ import annotations

import asyncio

import httpx
import ollama
import openai
import pytest

from localinfer.backends.embedded import EmbeddedBackend
from tests.support.embedded_gateway import engine, url
from tests.support.engine import busy_slots, wait_all_slots_free

pytestmark = pytest.mark.integration

__all__ = ["engine", "url"]  # the fixtures, used by name


def test_openai_sdk_chats_with_the_embedded_engine(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2", max_tokens=12, temperature=0,
        messages=[{"role": "user", "content": "Say hello."}])
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert raw.headers["x-localinfer-tier"] == "embedded"
    assert raw.headers["x-localinfer-backend"] == "embedded"

    stream = client.chat.completions.create(
        model="smollm2", max_tokens=12, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Count to five."}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip()


def test_ollama_client_chats_with_the_embedded_engine(url: str) -> None:
    client = ollama.Client(host=url, timeout=120)
    parts = list(client.chat(model="smollm2", stream=True, options={"num_predict": 8},
                             messages=[{"role": "user", "content": "Hi!"}]))
    assert parts[-1].done and parts[-1].eval_count
    assert "".join(p.message.content or "" for p in parts[:-1]).strip()


def eos_id() -> int:
    from localinfer.assets.bundled import bundled_model_path
    from localinfer.assets.gguf import validate_gguf

    return int(validate_gguf(bundled_model_path()).metadata["tokenizer.ggml.eos_token_id"])


def test_disconnect_frees_the_slot_in_the_engine(url: str, engine: EmbeddedBackend) -> None:
    body = {"model": "smollm2", "stream": True, "max_tokens": 1500, "temperature": 1.0,
            # End-of-generation forbidden (ignore_eos is refused by the gateway's table).
            "logit_bias": {str(eos_id()): -100.0},
            "messages": [{"role": "user", "content": "Write a long story."}]}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response:
        events = (line for line in response.iter_lines() if line)
        for _ in range(3):
            assert next(events).startswith("data: ")
        assert busy_slots(engine) == 1  # generating while the client reads
    # The client left: llama.cpp stops generating and frees the slot (asked of /slots,
    # waited for generously: an event, not a timing).
    assert asyncio.run(wait_all_slots_free(engine))
    reply = httpx.post(url + "/v1/chat/completions", timeout=60, json={
        "model": "smollm2", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200
