"""The embedded engine's own generation loop (generate.py) for real, on the bundled
SmolLM2-135M-Instruct: same text as llama-cpp-python's chat completion under greedy
sampling, prompt prefix reuse that changes nothing but the work done, the compute
report, and the stop-string scanner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer.backends.embedded import EmbeddedBackend
from localinfer.backends.embedded.generate import StopScanner
from localinfer.settings import Settings
from localinfer.types import ChatRequest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    home = tmp_path_factory.mktemp("home")
    backend = EmbeddedBackend(Settings(home=home, scan_default_ports=False))
    yield backend
    asyncio.run(backend.aclose())


def ask(messages: list[dict[str, str]] | str, **options: object) -> ChatRequest:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return ChatRequest(messages=messages, **options)  # type: ignore[arg-type]


async def reply(engine: EmbeddedBackend, request: ChatRequest, *, loop: str = "native",
                reuse: bool = True) -> str:
    engine.loop, engine.prefix_reuse = loop, reuse
    try:
        text = (await engine.chat(request, "default")).text
    finally:
        engine.loop, engine.prefix_reuse = "native", True
    assert engine.last_loop == loop
    return text


PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.",
           "Explain in two sentences why the sky is blue."]


@pytest.mark.parametrize("prompt", PROMPTS)
async def test_greedy_text_equals_the_high_level_path(engine: EmbeddedBackend,
                                                      prompt: str) -> None:
    request = ask(prompt, temperature=0, max_tokens=60)
    ours = await reply(engine, request, loop="native")
    theirs = await reply(engine, request, loop="high-level")
    assert ours and ours == theirs


async def test_stop_max_tokens_and_logit_bias_match_the_high_level_path(
        engine: EmbeddedBackend) -> None:
    full = await reply(engine, ask(PROMPTS[1], temperature=0, max_tokens=40))
    stop = full[12:15]
    request = ask(PROMPTS[1], temperature=0, max_tokens=40, stop=[stop],
                  logit_bias={"13": -100.0})  # 13: a common token, banned on both paths
    ours = await reply(engine, request, loop="native")
    assert ours == await reply(engine, request, loop="high-level")
    assert stop not in ours
    short = ask(PROMPTS[0], temperature=0, max_tokens=5)
    assert await reply(engine, short) == await reply(engine, short, loop="high-level")


async def test_json_mode_runs_on_our_loop(engine: EmbeddedBackend) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    request = ask("Which city is the capital of France?", temperature=0, max_tokens=40,
                  response_format={"type": "json_schema",
                                   "json_schema": {"name": "a", "schema": schema}})
    text = await reply(engine, request)
    assert isinstance(json.loads(text)["city"], str)


async def test_tool_calls_keep_the_high_level_path(engine: EmbeddedBackend) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}}]
    request = ask("Weather in Paris?", max_tokens=40, temperature=0, tools=tools,
                  tool_choice={"type": "function", "function": {"name": "get_weather"}})
    answer = await engine.chat(request, "default")
    assert engine.last_loop == "high-level"
    assert answer.choices[0].finish_reason == "tool_calls"
    # and the next plain request, on our loop, starts from a context it knows nothing of
    plain = ask(PROMPTS[0], temperature=0, max_tokens=30)
    assert await reply(engine, plain) == await reply(engine, plain, loop="high-level")


async def chat_turns(engine: EmbeddedBackend, *, loop: str, reuse: bool,
                     **options: object) -> tuple[list[str], list[float]]:
    history: list[dict[str, str]] = []
    answers, reused = [], []
    for question in ("Hi! What is a lighthouse?", "Who works there?", "Is it lonely?"):
        history.append({"role": "user", "content": question})
        answer = await reply(engine, ask(history, temperature=0, max_tokens=30, **options),
                             loop=loop, reuse=reuse)
        reused.append(engine.timings["reused_tokens"])
        history.append({"role": "assistant", "content": answer})
        answers.append(answer)
    return answers, reused


async def test_a_growing_chat_reuses_its_prefix_as_llama_cpp_python_does(
        engine: EmbeddedBackend) -> None:
    # Kept and recomputed KV entries differ in their last bits (one-token decodes
    # against one batch), so a reused prefix may change a near-tie many tokens later,
    # as with llama-server's prompt cache. What must hold exactly: the same text as the
    # high-level path, which keeps the same prefix of its own cache, and as the
    # high-level path recomputing everything (a seed makes it reset; greedy ignores it).
    ours, reused = await chat_turns(engine, loop="native", reuse=True)
    theirs, _ = await chat_turns(engine, loop="high-level", reuse=True)
    assert ours == theirs
    assert reused[0] == 0 and all(n > 30 for n in reused[1:]), reused
    fresh, none = await chat_turns(engine, loop="native", reuse=False)
    theirs_fresh, _ = await chat_turns(engine, loop="high-level", reuse=True, seed=1)
    assert fresh == theirs_fresh and none == [0, 0, 0]
    assert fresh[0] == ours[0]  # nothing to reuse on the first turn


async def test_compute_is_reported_and_the_gpu_setting_honoured(tmp_path: Path) -> None:
    backend = EmbeddedBackend(Settings(home=tmp_path, scan_default_ports=False,
                                       embedded_gpu_layers=0, embedded_threads=1))
    try:
        await backend.warm()
        compute = backend.compute
    finally:
        await backend.aclose()
    assert compute["threads"] == 1 and compute["gpu_layers_requested"] == 0
    assert compute["gpu_layers"] == 0 and compute["model_layers"] > 0
    assert isinstance(compute["gpu_offload_supported"], bool)
    assert compute["cpu_features"], compute  # llama.cpp names at least its SIMD level
    if not compute["gpu_offload_supported"]:
        return
    # A build that can offload (untested on this CPU-only machine) uses every layer.
    backend = EmbeddedBackend(Settings(home=tmp_path, scan_default_ports=False))
    try:
        await backend.warm()
        assert backend.compute["gpu_layers"] == -1
    finally:
        await backend.aclose()


def test_stop_scanner_holds_back_what_may_start_a_stop_string() -> None:
    scan = StopScanner(["END", "\n\n"])
    assert scan.feed("hello E") == ("hello ", False)  # "E" may begin "END"
    assert scan.feed("x") == ("Ex", False)  # it did not
    assert scan.feed("ab\n") == ("ab", False)
    assert scan.feed("\nrest") == ("", True)  # "\n\n" found across two pieces
    scan = StopScanner(["END"])
    assert scan.feed("the EN") == ("the ", False)
    assert scan.flush("") == "EN"  # generation over: held-back text is text
    assert StopScanner([]).feed("EN") == ("EN", False)
