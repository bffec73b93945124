"""``POST /api/generate`` and Ollama's model names through the official ``ollama`` client."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.fake_backend import FakeBackend, Script


@pytest.mark.compat("ollama", "/api/generate", "scripted")
def test_generate_streams_ndjson_by_default(oll: ollama.Client,
                                            backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Once", " upon", " a time"]))
    parts = list(oll.generate(model="fake-model", prompt="Tell a story.", stream=True))
    assert "".join(p.response or "" for p in parts) == "Once upon a time"
    assert [p.done for p in parts] == [False, False, False, True]
    assert parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == 3
    assert parts[-1].context is None  # token ids are not kept; clients may omit them


def test_generate_not_streamed_with_system(gateway: str, oll: ollama.Client,
                                           backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Paris"]))
    reply = oll.generate(model="fake-model", prompt="Capital of France?",
                         system="Answer in one word.", options={"num_predict": 5})
    assert reply.response == "Paris" and reply.done and reply.done_reason == "stop"
    # Raw HTTP: stream defaults to true, so a JSON object needs stream: false.
    body = httpx.post(gateway + "/api/generate", json={
        "model": "fake-model", "prompt": "hi", "stream": False}, timeout=60).json()
    assert body["response"] == "hello world" and body["done"] is True


def test_generate_sends_system_then_prompt(gateway: str,
                                           backends: list[FakeBackend]) -> None:
    seen: list[list[dict[str, object]]] = []
    original = backends[0].stream_chat

    async def spy(request, model):  # type: ignore[no-untyped-def]
        seen.append([m.model_dump(exclude_none=True) for m in request.messages])
        async for chunk in original(request, model):
            yield chunk

    backends[0].stream_chat = spy  # type: ignore[method-assign]
    httpx.post(gateway + "/api/generate", json={
        "model": "fake-model", "prompt": "Q", "system": "S", "stream": False}, timeout=60)
    assert seen == [[{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]]


def test_empty_prompt_preloads_as_ollama_does(oll: ollama.Client,
                                              backends: list[FakeBackend]) -> None:
    reply = oll.generate(model="fake-model")
    assert reply.done is True and reply.done_reason == "load" and reply.response == ""
    assert backends[0].calls == []  # nothing generated
    unload = oll.generate(model="fake-model", keep_alive=0)
    assert unload.done_reason == "unload"
    with pytest.raises(ollama.ResponseError) as info:
        oll.generate(model="no-such-model")
    assert info.value.status_code == 404 and "fake-model" in info.value.error


@pytest.mark.compat("ollama", "/api/generate raw, images, suffix, template, context",
                    "scripted", refused="400 naming the field")
@pytest.mark.parametrize(("field", "value"), [
    ("images", ["aGVsbG8="]), ("raw", True), ("suffix", "end"), ("template", "{{ .Prompt }}"),
    ("context", [1, 2, 3]), ("think", True)])
def test_generate_refuses_what_it_cannot_honour(gateway: str, field: str,
                                                value: object) -> None:
    response = httpx.post(gateway + "/api/generate", json={
        "model": "fake-model", "prompt": "hi", field: value}, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert isinstance(error, str) and field in error


def test_generate_images_refused_through_the_client(oll: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oll.generate(model="fake-model", prompt="what is this?", images=[b"\x89PNG"])
    assert info.value.status_code == 400 and "images" in info.value.error


@pytest.mark.compat("ollama", "ollama chat", "scripted")
@pytest.mark.compat("ollama", "model show", "scripted")
@pytest.mark.compat("ollama", "embeddings", "scripted")
def test_latest_tag_is_the_same_model(oll: ollama.Client, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["ok"]))
    reply = oll.chat(model="fake-model:latest", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "ok"
    assert backends[0].calls == [("chat", "fake-model")]
    assert oll.show("fake-model:latest").capabilities == ["completion"]
    assert oll.generate(model="fake-model:latest").done_reason == "load"
    assert len(oll.embed(model="fake-embedder:latest", input="abc").embeddings) == 1


def test_name_without_tag_finds_a_latest_model(run_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.gateway_harness import serve_gateway
    chat = FakeBackend("tagged", tier="embedded", model_ids=("llama3:latest",))
    url = serve_gateway(run_app, tmp_path, [chat])
    reply = ollama.Client(host=url, timeout=60).chat(
        model="llama3", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "hello world"
    assert chat.calls == [("chat", "llama3:latest")]


@pytest.mark.compat("ollama", "model list", "scripted")
def test_tags_give_distinct_stable_digests(oll: ollama.Client) -> None:
    first = {m.model: m.digest for m in oll.list().models}
    again = {m.model: m.digest for m in oll.list().models}
    assert first == again
    digests = list(first.values())
    assert len(set(digests)) == len(digests) == 2
    assert all(d and len(d) == 64 for d in digests)


@pytest.mark.compat("ollama", "/api/copy, create, push",
                    "scripted", refused="501 naming the localinfer command")
@pytest.mark.parametrize("path", ["/api/copy", "/api/create", "/api/push"])
def test_model_management_is_501_naming_the_command(gateway: str, path: str) -> None:
    # /api/pull and /api/delete are served: test_pull_api.py.
    response = httpx.request("POST", gateway + path, content=json.dumps(
        {"model": "x", "modelfile": "FROM /etc/passwd"}), timeout=60)
    assert response.status_code == 501
    error = response.json()["error"]
    assert isinstance(error, str) and ("localinfer" in error)


def test_ollama_embed_dimensions(oll: ollama.Client) -> None:
    assert len(oll.embed(model="fake-embedder", input="ab", dimensions=2).embeddings[0]) == 2
    with pytest.raises(ollama.ResponseError) as info:
        oll.embed(model="fake-embedder", input="ab", dimensions=1)
    assert info.value.status_code == 400 and "dimensions" in info.value.error
