"""``POST /v1/responses`` through the official ``openai`` SDK (``responses.create`` and
``responses.stream``) over the scripted backends: input as string and items,
instructions, max_output_tokens, typed stream events, function calls,
previous_response_id from the in-memory store, store: false, and honest 400s."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from localinfer.gateway.responses import ResponseStore
from localinfer.types import ChatChunk, ChatRequest, ChatStream, ChunkChoice, Delta
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import RunApp, serve_gateway

TOOLS: Any = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"]}}]
STREAM_ORDER = ["response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done",
                "response.output_item.done", "response.completed"]


class ToolCaller(FakeBackend):
    """Answers every request with one call of get_weather, its arguments in two pieces."""

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        self.calls.append(("chat", model))
        self.seen = request
        first = {"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": '}}
        yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(tool_calls=[first]))])
        rest = {"index": 0, "function": {"arguments": '"Paris"}'}}
        yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(tool_calls=[rest]))])
        yield ChatChunk(model=model, choices=[ChunkChoice(finish_reason="tool_calls")])


def spy_messages(backend: FakeBackend) -> list[list[dict[str, Any]]]:
    seen: list[list[dict[str, Any]]] = []
    original = backend.stream_chat

    async def spy(request: ChatRequest, model: str) -> ChatStream:
        seen.append([m.model_dump(exclude_none=True) for m in request.messages])
        spy.request = request  # type: ignore[attr-defined]
        async for chunk in original(request, model):
            yield chunk

    backend.stream_chat = spy  # type: ignore[method-assign]
    return seen


@pytest.mark.compat("openai", "/v1/responses", "scripted")
def test_create_with_string_input_and_instructions(oai: openai.OpenAI,
                                                   backends: list[FakeBackend]) -> None:
    seen = spy_messages(backends[0])
    backends[0].enqueue(Script(chunks=["Bonjour", " !"]))
    reply = oai.responses.create(model="fake-model", input="Say hello in French.",
                                 instructions="Be brief.", max_output_tokens=20,
                                 temperature=0)
    assert reply.object == "response" and reply.status == "completed"
    assert reply.id.startswith("resp_") and reply.output_text == "Bonjour !"
    assert reply.output[0].type == "message" and reply.output[0].role == "assistant"
    assert reply.usage is not None and reply.instructions == "Be brief."
    assert seen == [[{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Say hello in French."}]]


def test_item_input_with_function_call_output(oai: openai.OpenAI,
                                              backends: list[FakeBackend]) -> None:
    seen = spy_messages(backends[0])
    backends[0].enqueue(Script(chunks=["It is sunny."]))
    reply = oai.responses.create(model="fake-model", tools=TOOLS, input=[
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Weather in "},
                     {"type": "input_text", "text": "Paris?"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": '{"sky": "clear"}'},
    ])
    assert reply.output_text == "It is sunny."
    assert seen == [[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": '{"sky": "clear"}', "tool_call_id": "c1"}]]
    request = backends[0].stream_chat.request  # type: ignore[attr-defined]
    assert request.tools and request.tools[0]["function"]["name"] == "get_weather"


def test_stream_events_in_order_with_sequence_numbers(oai: openai.OpenAI,
                                                      backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["a", "b", "c"]))
    events = list(oai.responses.create(model="fake-model", input="abc", stream=True))
    kinds = [e.type for e in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == STREAM_ORDER
    assert kinds.count("response.output_text.delta") == 3
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "abc" and done.response.usage is not None
    assert done.response.usage.output_tokens == 3


@pytest.mark.compat("openai", "/v1/responses stream", "scripted")
def test_stream_helper_gives_the_final_response(oai: openai.OpenAI,
                                                backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Hel", "lo"]))
    with oai.responses.stream(model="fake-model", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Hel", "lo"] and final.output_text == "Hello"


@pytest.mark.compat("openai", "/v1/responses previous_response_id", "scripted")
def test_previous_response_id_continues_the_chat(oai: openai.OpenAI,
                                                 backends: list[FakeBackend]) -> None:
    seen = spy_messages(backends[0])
    backends[0].enqueue(Script(chunks=["Hi Ada."])).enqueue(Script(chunks=["Ada."]))
    backends[0].enqueue(Script(chunks=["streamed"]))
    first = oai.responses.create(model="fake-model", input="I am Ada.", instructions="X")
    second = oai.responses.create(model="fake-model", input="Who am I?",
                                  previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert seen[1] == [{"role": "user", "content": "I am Ada."},
                       {"role": "assistant", "content": "Hi Ada."},
                       {"role": "user", "content": "Who am I?"}]  # instructions not carried
    with oai.responses.stream(model="fake-model", input="And?",
                              previous_response_id=second.id) as stream:
        final = stream.get_final_response()
    assert seen[2][-1] == {"role": "user", "content": "And?"} and len(seen[2]) == 5
    third = oai.responses.retrieve(final.id)
    assert third.output_text == "streamed"


def test_store_false_and_unknown_ids_are_a_clear_400(oai: openai.OpenAI) -> None:
    unstored = oai.responses.create(model="fake-model", input="secret", store=False)
    assert (unstored.model_extra or {}).get("store") is False
    for missing in (unstored.id, "resp_nope"):
        with pytest.raises(openai.BadRequestError) as info:
            oai.responses.create(model="fake-model", input="again",
                                 previous_response_id=missing)
        body = info.value.body
        assert isinstance(body, dict) and body["code"] == "previous_response_not_found"
        assert body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(unstored.id)


@pytest.mark.compat("openai", "/v1/responses tools", "scripted")
def test_function_calls_as_output_items(run_app: RunApp, tmp_path: Any) -> None:
    caller = ToolCaller("tools", tier="embedded", model_ids=("tool-model",))
    url = serve_gateway(run_app, tmp_path, [caller])
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
    reply = client.responses.create(model="tool-model", input="Weather in Paris?", tools=TOOLS)
    (call,) = reply.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.arguments == '{"city": "Paris"}' and call.call_id == "call_1"
    assert caller.seen.tools == [{"type": "function", "function": {
        k: v for k, v in TOOLS[0].items() if k != "type"}}]
    with client.responses.stream(model="tool-model", input="Weather?", tools=TOOLS) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    (streamed,) = final.output
    assert streamed.type == "function_call" and streamed.arguments == '{"city": "Paris"}'
    # The call's output continues the chat from the stored response.
    follow = client.responses.create(model="tool-model", previous_response_id=final.id,
                                     tools=TOOLS, input=[{"type": "function_call_output",
                                                          "call_id": "call_1",
                                                          "output": "sunny"}])
    assert [m.role for m in caller.seen.messages] == ["user", "assistant", "tool"]
    assert follow.output[0].type == "function_call"


@pytest.mark.compat("openai", "/v1/responses background, reasoning, images, …",
                    "scripted", refused="400 naming the parameter")
@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"background": True}, "background"),
    ({"reasoning": {"effort": "high"}}, "reasoning"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"truncation": "auto"}, "truncation"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": ""}, "input"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
])
def test_refusals_name_the_parameter(gateway: str, extra: dict[str, Any], param: str) -> None:
    body = {"model": "fake-model", "input": "hi", **extra}
    response = httpx.post(gateway + "/v1/responses", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error


@pytest.mark.compat("openai", "/v1/responses json schema", "scripted")
def test_json_schema_format_reaches_the_backend(oai: openai.OpenAI,
                                                backends: list[FakeBackend]) -> None:
    spy_messages(backends[0])
    backends[0].enqueue(Script(chunks=['{"a": 1}']))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt: Any = {"type": "json_schema", "name": "thing", "schema": schema}
    reply = oai.responses.create(model="fake-model", input="json please", text={"format": fmt})
    assert reply.output_text == '{"a": 1}'
    request = backends[0].stream_chat.request  # type: ignore[attr-defined]
    assert request.response_format == {"type": "json_schema",
                                       "json_schema": {"name": "thing", "schema": schema}}


def test_store_is_bounded_oldest_first() -> None:
    store = ResponseStore(max_items=2)
    for i in range(3):
        store.put({"id": f"r{i}", "output": []}, [{"role": "user", "content": str(i)}])
    assert store.get("r0") is None and store.get("r1") and store.get("r2")
    tiny = ResponseStore(max_bytes=200)
    tiny.put({"id": "big"}, [{"role": "user", "content": "x" * 300}])
    assert tiny.get("big") is None and tiny.size == 0


def test_responses_in_openapi(gateway: str) -> None:
    paths = httpx.get(gateway + "/openapi.json", timeout=60).json()["paths"]
    assert "post" in paths["/v1/responses"] and "get" in paths["/v1/responses/{response_id}"]


def published_response_schema(url: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema")  # schemathesis' own dependency
    schema = httpx.get(url + "/openapi.json", timeout=60).json()["components"]["schemas"]
    return jsonschema.Draft202012Validator(schema["Response"])


def test_answers_match_the_published_response_schema(run_app: RunApp, tmp_path: Any) -> None:
    """The closed ``Response`` schema of /openapi.json against real answers of both output
    item kinds (schemathesis' fake backend never makes tool calls) and their GET."""
    caller = ToolCaller("tools", tier="embedded", model_ids=("tool-model",))
    talker = FakeBackend("talk", tier="embedded", model_ids=("fake-model",))
    url = serve_gateway(run_app, tmp_path, [caller, talker])
    validator = published_response_schema(url)
    for body in ({"model": "fake-model", "input": "hi", "metadata": {"k": "v"}},
                 {"model": "tool-model", "input": "Weather?", "tools": TOOLS}):
        created = httpx.post(url + "/v1/responses", json=body, timeout=60)
        assert created.status_code == 200, created.text
        kept = httpx.get(f"{url}/v1/responses/{created.json()['id']}", timeout=60)
        for answer in (created.json(), kept.json()):
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(answer)]
            assert not errors, errors
    assert {item["type"] for item in kept.json()["output"]} == {"function_call"}
