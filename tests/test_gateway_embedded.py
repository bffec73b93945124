"""The real embedded engine (llama.cpp on the bundled SmolLM2-135M) served through the
gateway to the official ``openai`` SDK and the ``ollama`` client; a client that leaves
mid-stream stops the generation in the worker process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from localinfer.backends.embedded import EmbeddedBackend
from tests.gateway_harness import RunApp, client_over, gateway_settings

pytestmark = pytest.mark.integration



@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    pytest.importorskip("llama_cpp")
    backend = EmbeddedBackend(gateway_settings(tmp_path, embedded_threads=2))
    yield backend
    backend._discard(backend._worker)  # stop the worker process


@pytest.fixture
def url(run_app: RunApp, tmp_path: Path, engine: EmbeddedBackend) -> str:
    from localinfer.gateway import create_app

    settings = gateway_settings(tmp_path, embedded_threads=2)
    return run_app(create_app(settings, client_over(settings, [engine])))


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


def test_disconnect_stops_generation_in_the_worker(url: str, engine: EmbeddedBackend) -> None:
    body = {"model": "smollm2", "stream": True, "max_tokens": 1500, "temperature": 1.0,
            "messages": [{"role": "user", "content": "Write a very long story."}]}
    confirmed = engine.cancels_confirmed
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response:
        events = (line for line in response.iter_lines() if line)
        for _ in range(3):
            assert next(events).startswith("data: ")
    pid = engine.worker_pid
    assert pid is not None
    # Generation stops: the worker confirms it (an event, waited for generously) or, if
    # it does not within the grace period on a loaded machine, it is killed. Either way
    # nothing is left generating.
    deadline = time.monotonic() + 60
    while engine.cancels_confirmed == confirmed and engine.worker_pid == pid:
        assert time.monotonic() < deadline, "the worker was neither stopped nor killed"
        time.sleep(0.05)
    # And the engine is free for the next caller at once.
    reply = httpx.post(url + "/v1/chat/completions", timeout=60, json={
        "model": "smollm2", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200
