"""``/v1/completions``, ``stream_options.include_usage``, ``default`` and honest 400s
through the official ``openai`` SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.fake_backend import FakeBackend, Script


def sse_events(response: httpx.Response) -> list[Any]:
    events = [line[len("data: "):] for line in response.text.splitlines()
              if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


@pytest.mark.compat("openai", "/v1/completions", "scripted")
@pytest.mark.compat("openai", "stop", "scripted")
def test_legacy_completion(oai: openai.OpenAI, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["def add", "(a, b):"]))
    reply = oai.completions.create(model="fake-model", prompt="# add two numbers\n",
                                   max_tokens=20, stop=["\n\n"])
    assert reply.object == "text_completion"
    assert reply.choices[0].text == "def add(a, b):"
    assert reply.choices[0].finish_reason == "stop"


def test_completion_prompt_list_and_echo(oai: openai.OpenAI,
                                         backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["one"])).enqueue(Script(chunks=["two"]))
    reply = oai.completions.create(model="fake-model", prompt=["A:", "B:"], echo=True)
    assert [(c.index, c.text) for c in reply.choices] == [(0, "A:one"), (1, "B:two")]


@pytest.mark.compat("openai", "/v1/completions stream", "scripted")
def test_completion_stream_with_usage(oai: openai.OpenAI,
                                      backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["x", "y", "z"]))
    chunks = list(oai.completions.create(model="fake-model", prompt="p", stream=True,
                                         stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "xyz"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_completion_stream_echo_and_two_prompts(gateway: str,
                                                backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["1"])).enqueue(Script(chunks=["2"]))
    response = httpx.post(gateway + "/v1/completions", json={
        "model": "fake-model", "prompt": ["a", "b"], "echo": True, "stream": True},
        timeout=60)
    assert response.headers["x-localinfer-backend"] == "fake-chat"
    texts: dict[int, str] = {}
    for event in sse_events(response):
        for choice in event["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {0: "a1", 1: "b2"}


@pytest.mark.compat("openai", "/v1/completions suffix, n, logprobs",
                    "scripted", refused="400 naming the parameter")
@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "x", "suffix": "y"}, "suffix"),
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": "x", "n": 2}, "n"),
    ({"prompt": "x", "logprobs": 1}, "logprobs"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
])
def test_completion_refusals(gateway: str, body: dict[str, Any], param: str) -> None:
    response = httpx.post(gateway + "/v1/completions", json={"model": "fake-model", **body},
                          timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and param in error["message"]


@pytest.mark.compat("openai", "stream", "scripted")
@pytest.mark.compat("openai", "usage", "scripted")
def test_chat_include_usage_is_a_separate_final_chunk(oai: openai.OpenAI,
                                                      backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["a", "b"]))
    chunks = list(oai.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.completion_tokens == 2
    assert chunks[-2].choices[0].finish_reason == "stop"


@pytest.mark.compat("openai", "model retrieve", "scripted")
def test_retrieve_default(oai: openai.OpenAI) -> None:
    model = oai.models.retrieve("default")
    assert model.id == "default" and model.owned_by == "fake-chat"
    assert model.model_extra and model.model_extra["localinfer"]["resolves_to"] == "fake-model"


@pytest.mark.compat("openai", "embeddings", "scripted")
@pytest.mark.compat("openai", "embeddings dimensions",
                    "scripted", refused="400 unless the model's own size")
def test_embeddings_dimensions_and_token_ids(oai: openai.OpenAI) -> None:
    # The fake embedder makes 2-d vectors: its own size is accepted, anything else refused.
    assert len(oai.embeddings.create(model="fake-embedder", input="a",
                                     dimensions=2).data[0].embedding) == 2
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        oai.embeddings.create(model="fake-embedder", input="a", dimensions=1)
    with pytest.raises(openai.BadRequestError, match="token-id input"):
        oai.embeddings.create(model="fake-embedder", input=[[15339, 1917]])
