"""The embedded engine for real: llama.cpp in a worker process serving the bundled
SmolLM2-135M-Instruct. Faults are real too: the worker is SIGKILLed mid-stream (a crash)
or SIGSTOPped (a hang), and the next request must get a fresh, working engine."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from localinfer.assets.bundled import MODEL_ID, bundled_model_path
from localinfer.assets.gguf import validate_gguf
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.backends.embedded.backend import CANCEL_GRACE
from localinfer.errors import (
    BackendError,
    BackendTimeout,
    BadModelFile,
    ModelNotFound,
    UsageError,
)
from localinfer.settings import Settings
from localinfer.types import ChatChunk, ChatRequest, ChatStream

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")]


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(home=tmp_path, scan_default_ports=False, **overrides)  # type: ignore[arg-type]


def ask(content: str, **options: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": content}], **options)  # type: ignore[list-item]


def endless(**options: object) -> ChatRequest:
    """A request that cannot end by itself: end-of-generation is forbidden."""
    eos = validate_gguf(bundled_model_path()).metadata["tokenizer.ggml.eos_token_id"]
    settings: dict[str, object] = {"max_tokens": 4000, "logit_bias": {str(eos): -100.0}}
    return ask("Tell me a very long story about a lighthouse.", **{**settings, **options})


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


async def take(stream: ChatStream, n: int) -> list[ChatChunk]:
    got: list[ChatChunk] = []
    async for chunk in stream:
        got.append(chunk)
        if len([c for c in got if c.text]) >= n:
            break
    return got


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    """One warm engine shared by the tests that do not break it."""
    engine = EmbeddedBackend(make_settings(tmp_path_factory.mktemp("home")))
    yield engine
    asyncio.run(engine.aclose())


# --- serving -------------------------------------------------------------------------------

async def test_models_describe_the_bundled_file(backend: EmbeddedBackend) -> None:
    [info] = await backend.models()
    assert info.id == MODEL_ID == "smollm2-135m-instruct"
    assert (info.backend, info.tier, info.capabilities) == ("embedded", "embedded", ["chat"])
    assert info.answers_to(bundled_model_path().name)


async def test_stream_yields_tokens_then_finish_and_usage(backend: EmbeddedBackend) -> None:
    chunks = [c async for c in backend.stream_chat(ask("Name three colours.", max_tokens=40,
                                                       temperature=0), MODEL_ID)]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 3  # streamed token by token, not in one piece
    final = chunks[-1]
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.usage is not None and final.usage.prompt_tokens > 0
    assert 0 < final.usage.completion_tokens <= 40
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert {c.id for c in chunks} == {final.id} and {c.tier for c in chunks} == {"embedded"}


async def test_max_tokens_ends_with_length(backend: EmbeddedBackend) -> None:
    reply = await backend.chat(endless(max_tokens=7, temperature=0), MODEL_ID)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 7
    assert reply.text


async def test_seed_makes_sampling_repeatable(backend: EmbeddedBackend) -> None:
    request = ask("Write a short poem about rain.", max_tokens=24, temperature=1.0, seed=1234)
    first = await backend.chat(request, MODEL_ID)
    second = await backend.chat(request, MODEL_ID)
    assert first.text and first.text == second.text


async def test_stop_sequence_cuts_the_answer(backend: EmbeddedBackend) -> None:
    # The stop string is taken from the model's own answer (whatever this build of
    # llama.cpp makes the tiny model say), so the test does not depend on its wording.
    request = ask("Count from one to twenty in words, separated by commas.", max_tokens=60,
                  temperature=0, seed=7)
    full = (await backend.chat(request, MODEL_ID)).text
    assert len(full) >= 16, full
    stop_at = full[10:14]
    cut = await backend.chat(request.model_copy(update={"stop": [stop_at]}), MODEL_ID)
    assert stop_at not in cut.text
    assert cut.text == full[:full.index(stop_at)]
    assert cut.choices[0].finish_reason == "stop"


async def test_response_format_json_schema_is_enforced(backend: EmbeddedBackend) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"]}
    reply = await backend.chat(ask("What is two plus two?", max_tokens=60, temperature=0,
                                   response_format={"type": "json_schema",
                                                    "json_schema": {"name": "a",
                                                                    "schema": schema}}),
                               MODEL_ID)
    value = json.loads(reply.text)
    assert isinstance(value["answer"], int)


async def test_forced_tool_call_streams_openai_shaped_deltas(backend: EmbeddedBackend) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    request = ask("What is the weather in Paris?", max_tokens=60, temperature=0, tools=tools,
                  tool_choice={"type": "function", "function": {"name": "get_weather"}})
    reply = await backend.chat(request, MODEL_ID)
    assert reply.choices[0].finish_reason == "tool_calls"
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # sent once, as OpenAI streams do
    assert isinstance(json.loads(call.function.arguments or ""), dict)


async def test_tools_the_template_would_drop_are_refused_not_ignored(
        backend: EmbeddedBackend) -> None:
    # SmolLM2's template has no tools block: offered tools would never reach the model.
    [info] = await backend.models()
    assert info.tools is False
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    with pytest.raises(UsageError, match="cannot take tools"):
        await backend.chat(ask("Weather in Paris?", tools=tools), MODEL_ID)


async def test_unknown_model_name_is_refused(backend: EmbeddedBackend) -> None:
    with pytest.raises(ModelNotFound):
        await anext(aiter(backend.stream_chat(ask("hi"), "no-such-model")))


async def test_concurrent_requests_each_get_their_solo_answer(backend: EmbeddedBackend) -> None:
    requests = [ask(f"Say the word {w}.", max_tokens=12, temperature=0.7, seed=7)
                for w in ("apple", "river")]
    alone = [(await backend.chat(r, MODEL_ID)).text for r in requests]
    together = await asyncio.gather(*(backend.chat(r, MODEL_ID) for r in requests))
    assert [r.text for r in together] == alone


# --- cancellation ---------------------------------------------------------------------------

async def test_closing_the_stream_stops_generation_and_keeps_the_engine(
        backend: EmbeddedBackend) -> None:
    stream = backend.stream_chat(endless(temperature=0.8), MODEL_ID)
    assert len(await take(stream, 3)) >= 3
    pid = backend.worker_pid
    assert pid is not None
    confirmed = backend.cancels_confirmed
    await stream.aclose()
    # Generation has stopped: the worker itself said so (an event, not a timing), and
    # it was not killed for it.
    assert backend.cancels_confirmed == confirmed + 1
    assert backend.worker_pid == pid
    # ...and it stayed warm: the next request is served by the same process.
    reply = await backend.chat(ask("Say yes.", max_tokens=5), MODEL_ID)
    assert reply.text and backend.worker_pid == pid


async def test_cancelling_the_task_stops_generation(backend: EmbeddedBackend) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for chunk in backend.stream_chat(endless(), MODEL_ID):
            if chunk.text:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 60)
    pid = backend.worker_pid
    confirmed = backend.cancels_confirmed
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pid is not None
    # Stopped: the worker confirmed it, or (on a loaded machine, past the grace) was
    # killed and the next request gets a fresh one; either way nothing is generating.
    assert backend.cancels_confirmed == confirmed + 1 or backend.worker_pid != pid
    assert (await backend.chat(ask("Say yes.", max_tokens=5), MODEL_ID)).text


async def test_a_closed_stream_does_not_disturb_the_next_request(
        backend: EmbeddedBackend) -> None:
    first = backend.stream_chat(endless(), MODEL_ID)
    await take(first, 2)
    await first.aclose()
    pid = backend.worker_pid
    # Keep the next request going past the cancel grace period: a stop left pending
    # from the closed stream would kill the worker under it.
    second = backend.stream_chat(endless(), MODEL_ID)
    deadline = time.monotonic() + CANCEL_GRACE + 1
    texts = 0
    async for chunk in second:
        texts += bool(chunk.text)
        if texts and time.monotonic() > deadline:
            break
    still = backend.worker_pid
    await second.aclose()
    assert texts > 0 and still == pid


# --- faults -------------------------------------------------------------------------------

@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    """A private engine for a test that breaks it."""
    fresh = EmbeddedBackend(make_settings(tmp_path))
    yield fresh
    await fresh.aclose()


async def assert_recovers(engine: EmbeddedBackend, old_pid: int, tmp_path: Path) -> None:
    engine.settings = make_settings(tmp_path)  # default patience again
    reply = await engine.chat(ask("Say hello.", max_tokens=8), MODEL_ID)
    assert reply.text and engine.worker_pid not in (None, old_pid)


async def warm_pid(engine: EmbeddedBackend) -> int:
    await engine.warm()
    assert engine.worker_pid is not None
    return engine.worker_pid


async def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return gone(pid)


async def started_stream(engine: EmbeddedBackend) -> tuple[ChatStream, int]:
    stream = engine.stream_chat(endless(), MODEL_ID)
    await take(stream, 2)
    assert engine.worker_pid is not None
    return stream, engine.worker_pid


async def test_crash_mid_stream_is_an_error_and_the_next_request_gets_a_fresh_engine(
        engine: EmbeddedBackend, tmp_path: Path) -> None:
    stream, pid = await started_stream(engine)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BackendError) as info:
        async for _ in stream:
            pass
    assert "SIGKILL" in info.value.message and not info.value.before_first_token
    await assert_recovers(engine, pid, tmp_path)


async def test_dead_idle_engine_is_replaced_on_the_next_request(
        engine: EmbeddedBackend, tmp_path: Path) -> None:
    pid = await warm_pid(engine)
    os.kill(pid, signal.SIGKILL)
    assert await wait_gone(pid)
    await assert_recovers(engine, pid, tmp_path)


async def test_hang_mid_stream_times_out_kills_and_recovers(
        engine: EmbeddedBackend, tmp_path: Path) -> None:
    stream, pid = await started_stream(engine)
    # Little patience from here on (a busy machine may be slow to produce the first
    # tokens, so the short timeout starts once they flow).
    engine.settings = make_settings(tmp_path, embedded_stall_timeout=1.0)
    os.kill(pid, signal.SIGSTOP)  # a real hang: the process stops producing anything
    with pytest.raises(BackendTimeout) as info:
        async for _ in stream:
            pass
    assert not info.value.before_first_token
    assert await wait_gone(pid)  # the hung worker was killed, not leaked
    await assert_recovers(engine, pid, tmp_path)


async def test_hang_before_first_token_allows_failover(
        engine: EmbeddedBackend, tmp_path: Path) -> None:
    pid = await warm_pid(engine)
    engine.settings = make_settings(tmp_path, embedded_stall_timeout=1.0)
    os.kill(pid, signal.SIGSTOP)
    with pytest.raises(BackendTimeout) as info:
        await engine.chat(ask("Say hello."), MODEL_ID)
    assert info.value.before_first_token  # the router may hand over to the next tier
    await assert_recovers(engine, pid, tmp_path)


# --- model files ------------------------------------------------------------------------------

async def test_invalid_gguf_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(bundled_model_path().read_bytes()[:100_000])  # a truncated download
    engine = EmbeddedBackend(make_settings(tmp_path), model_path=bad)
    with pytest.raises(BadModelFile, match=r"broken\.gguf"):
        await engine.models()
    with pytest.raises(BadModelFile, match="truncated"):
        await engine.chat(ask("hi"), "broken")
    assert engine.worker_pid is None


async def test_header_valid_but_unloadable_model_is_an_error_not_a_crash(tmp_path: Path) -> None:
    def gstr(s: str) -> bytes:
        return struct.pack("<Q", len(s)) + s.encode()

    empty = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("general.architecture") \
        + struct.pack("<I", 8) + gstr("llama")
    path = tmp_path / "empty.gguf"
    path.write_bytes(empty)
    engine = EmbeddedBackend(make_settings(tmp_path), model_path=path)
    [info] = await engine.models()  # the header itself is fine
    assert info.id == "empty"
    with pytest.raises((BadModelFile, BackendError)):
        await engine.chat(ask("hi"), "empty")
    assert engine.worker_pid is None


def test_cli_refuses_a_bad_gguf_with_one_line_and_its_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 0))
    env = {**os.environ, "LOCALINFER_HOME": str(tmp_path), "LOCALINFER_SCAN_DEFAULT_PORTS": "0"}
    done = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "chat", "-m", str(bad),
                           "hello"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == BadModelFile.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.gguf" in lines[0] and "Traceback" not in done.stderr
