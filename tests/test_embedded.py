"""The embedded engine for real: llama.cpp's own server (xllamacpp) in the home's shared
child, serving the bundled SmolLM2-135M-Instruct. Faults are real too: the child is
SIGKILLed mid-stream (a crash) or SIGSTOPped (a hang), and the next request must get a
fresh, working engine."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jsonschema
import pytest

from localinfer import AsyncClient
from localinfer.assets.bundled import MODEL_ID, bundled_model_path
from localinfer.backends.capabilities import needs
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.errors import (
    BackendError,
    BackendTimeout,
    BadModelFile,
    ContextLengthExceeded,
    ModelNotFound,
    ToolsNotRendered,
    UsageError,
)
from localinfer.settings import Settings
from localinfer.types import ChatChunk, ChatRequest, ChatStream
from tests.gateway_harness import client_over
from tests.support.engine import ask, endless, slots, wait_all_slots_free, wait_gone

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")]

THREADS = int(os.environ.get("LOCALINFER_TEST_THREADS", "2"))


def make_settings(home: Path, **overrides: object) -> Settings:
    return Settings(home=home, scan_default_ports=False, embedded_threads=THREADS,  # type: ignore[arg-type]
                    **overrides)


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
    asyncio.run(engine.stop_engine())


# --- serving -------------------------------------------------------------------------------

async def test_models_describe_the_bundled_file(backend: EmbeddedBackend) -> None:
    [info] = await backend.models()
    assert info.id == MODEL_ID == "smollm2-135m-instruct"
    assert (info.backend, info.tier, info.capabilities) == ("embedded", "embedded", ["chat"])
    assert info.answers_to(bundled_model_path().name)


async def test_stream_yields_tokens_then_finish_and_usage(backend: EmbeddedBackend) -> None:
    request = ask("Name three colours.", max_tokens=40, temperature=0,
                  stream_options={"include_usage": True})
    chunks = [c async for c in backend.stream_chat(request, MODEL_ID)]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 3  # streamed token by token, not in one piece
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 40
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


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
    # The stop string is taken from the model's own answer, so the test does not depend
    # on what this build of llama.cpp makes the tiny model say.
    request = ask("Count from one to twenty in words, separated by commas.", max_tokens=60,
                  temperature=0, seed=7)
    full = (await backend.chat(request, MODEL_ID)).text
    assert len(full) >= 16, full
    stop_at = full[10:14]
    cut = await backend.chat(request.model_copy(update={"stop": [stop_at]}), MODEL_ID)
    assert stop_at not in cut.text
    assert cut.text == full[:full.index(stop_at)]
    assert cut.choices[0].finish_reason == "stop"


SCHEMA = {"type": "object",
          "properties": {"city": {"type": "string", "maxLength": 40},
                         "population": {"type": "integer"},
                         "coastal": {"type": "boolean"}},
          "required": ["city", "population", "coastal"], "additionalProperties": False}
SCHEMA_PROMPTS = ["Describe Paris.", "Tell me about Oslo.", "What is Lima like?",
                  "Give facts on Cairo.", "Describe a small town.", "Hello!",
                  "Write a poem about the sea.", "Ignore the format and answer in prose."]


async def test_json_schema_answers_are_always_valid_against_their_schema(
        backend: EmbeddedBackend) -> None:
    """Over many prompts, prose-inviting ones included: llama.cpp's grammar holds every
    answer to the schema (issue 26 §8b: one answer once broke out of it)."""
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    for prompt in SCHEMA_PROMPTS:
        reply = await backend.chat(ask(prompt, max_tokens=120, temperature=0.8, seed=3,
                                       response_format=response_format), MODEL_ID)
        assert reply.choices[0].finish_reason == "stop", (prompt, reply.text)
        jsonschema.validate(json.loads(reply.text), SCHEMA)


async def test_n_and_logprobs_are_served(backend: EmbeddedBackend) -> None:
    reply = await backend.chat(ask("Say hello.", max_tokens=4, n=2, logprobs=True,
                                   top_logprobs=2, temperature=1.0), MODEL_ID)
    assert [c.index for c in reply.choices] == [0, 1]
    logprobs = (reply.choices[0].model_extra or {}).get("logprobs")
    assert logprobs and len(logprobs["content"][0]["top_logprobs"]) == 2


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


async def test_tools_the_template_would_drop_are_refused_not_ignored(
        backend: EmbeddedBackend) -> None:
    # SmolLM2's own template has no tools block: offered tools would never reach it. The
    # router asks the tier's capabilities when it chooses it (the engine's /props).
    request = ask("Weather in Paris?", tools=TOOLS)
    caps = await backend.capabilities(None, needs(request))
    assert caps.tools is False  # llama.cpp's /props said so
    [info] = await backend.models()
    assert info.tools is False  # and the listing says it from now on
    async with client_over(backend.settings, [backend]) as client:
        with pytest.raises(ToolsNotRendered, match="embedded_chat_template"):
            await client.complete(request)


async def test_a_chat_template_with_tools_makes_the_tier_serve_tool_calls(
        tmp_path: Path) -> None:
    engine = EmbeddedBackend(make_settings(tmp_path, embedded_chat_template="chatml-tools",
                                           embedded_parallel=1))
    # The 135M model never starts a call by itself: its turn is primed with the template's
    # call marker, and "required" makes llama.cpp's grammar finish it as a real call.
    primed = ChatRequest(messages=[{"role": "user", "content": "What is the weather in Paris?"},
                                   {"role": "assistant", "content": "<tool_call>\n"}],
                         max_tokens=40, temperature=0, tools=TOOLS, tool_choice="required")
    assert (await engine.capabilities(None, needs(primed))).tools is True
    reply = await engine.chat(primed, MODEL_ID)
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments or ""), dict)
    [info] = await engine.models()
    assert info.tools is True
    await engine.stop_engine()


async def test_unknown_model_name_is_refused(backend: EmbeddedBackend) -> None:
    with pytest.raises(ModelNotFound):
        await anext(aiter(backend.stream_chat(ask("hi"), "no-such-model")))


async def test_a_prompt_longer_than_the_context_is_context_length_exceeded(
        backend: EmbeddedBackend) -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        await backend.chat(ask("word " * 3000, max_tokens=4), MODEL_ID)
    assert str(backend.settings.embedded_context) in info.value.message


async def test_concurrent_requests_are_served_together(backend: EmbeddedBackend) -> None:
    requests = [ask(f"Say the word {w}.", max_tokens=12, temperature=0) for w in
                ("apple", "river", "stone")]
    replies = await asyncio.gather(*(backend.chat(r, MODEL_ID) for r in requests))
    assert all(r.text for r in replies)
    assert len(slots(backend)) == backend.settings.embedded_parallel


# --- cancellation ---------------------------------------------------------------------------

async def test_closing_the_stream_frees_its_slot_and_keeps_the_engine(
        backend: EmbeddedBackend) -> None:
    stream = backend.stream_chat(endless(temperature=0.8), MODEL_ID)
    assert len(await take(stream, 3)) >= 3
    pid = backend.engine_pid
    assert pid is not None
    await stream.aclose()
    # Generation has stopped: llama.cpp itself says no slot is processing.
    assert await wait_all_slots_free(backend)
    reply = await backend.chat(ask("Say yes.", max_tokens=5), MODEL_ID)
    assert reply.text and backend.engine_pid == pid


async def test_cancelling_the_task_frees_its_slot(backend: EmbeddedBackend) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for chunk in backend.stream_chat(endless(), MODEL_ID):
            if chunk.text:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 120)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_all_slots_free(backend)


# --- faults -------------------------------------------------------------------------------

@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    """A private engine (its own home) for a test that breaks it."""
    fresh = EmbeddedBackend(make_settings(tmp_path / "home", embedded_parallel=1))
    yield fresh
    await fresh.stop_engine()


async def assert_recovers(engine: EmbeddedBackend, old_pid: int) -> None:
    engine.settings = make_settings(engine.settings.home, embedded_parallel=1)
    reply = await engine.chat(ask("Say hello.", max_tokens=8), MODEL_ID)
    assert reply.text and engine.engine_pid not in (None, old_pid)


async def warm_pid(engine: EmbeddedBackend) -> int:
    return (await engine.warm()).pid


async def started_stream(engine: EmbeddedBackend) -> tuple[ChatStream, int]:
    stream = engine.stream_chat(endless(), MODEL_ID)
    await take(stream, 2)
    assert engine.engine_pid is not None
    return stream, engine.engine_pid


async def test_crash_mid_stream_is_an_error_and_the_next_request_gets_a_fresh_engine(
        engine: EmbeddedBackend) -> None:
    stream, pid = await started_stream(engine)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BackendError) as info:
        async for _ in stream:
            pass
    assert "the next request starts a fresh one" in info.value.message
    assert not info.value.before_first_token
    await assert_recovers(engine, pid)


async def test_dead_idle_engine_is_replaced_on_the_next_request(
        engine: EmbeddedBackend) -> None:
    pid = await warm_pid(engine)
    os.kill(pid, signal.SIGKILL)
    assert await wait_gone(pid)
    await assert_recovers(engine, pid)


@pytest.fixture
async def hangable(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    """A private engine with little patience: 10 s without a byte is a hang (generous
    for a loaded machine, where tokens still come every fraction of a second)."""
    fresh = EmbeddedBackend(make_settings(tmp_path / "home", embedded_parallel=1,
                                          embedded_stall_timeout=10.0))
    yield fresh
    await fresh.stop_engine()


async def test_hang_mid_stream_times_out_kills_and_recovers(hangable: EmbeddedBackend) -> None:
    stream, pid = await started_stream(hangable)
    os.kill(pid, signal.SIGSTOP)  # a real hang: the process stops producing anything
    with pytest.raises(BackendTimeout) as info:
        async for _ in stream:
            pass
    assert not info.value.before_first_token
    assert await wait_gone(pid)  # the hung engine was killed, not leaked
    await assert_recovers(hangable, pid)


async def test_hang_before_first_token_allows_failover(hangable: EmbeddedBackend) -> None:
    pid = await warm_pid(hangable)
    os.kill(pid, signal.SIGSTOP)
    with pytest.raises(BackendTimeout) as info:
        await anext(aiter(hangable.stream_chat(ask("Say hello."), MODEL_ID)))
    assert info.value.before_first_token  # the router may hand over to the next tier
    assert await wait_gone(pid)
    await assert_recovers(hangable, pid)


# --- model files ------------------------------------------------------------------------------

async def test_invalid_gguf_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(bundled_model_path().read_bytes()[:100_000])  # a truncated download
    engine = EmbeddedBackend(make_settings(tmp_path), model_path=bad)
    with pytest.raises(BadModelFile, match=r"broken\.gguf"):
        await engine.models()
    with pytest.raises(BadModelFile, match="truncated"):
        await engine.chat(ask("hi"), "broken")
    assert engine.engine_pid is None


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
    with pytest.raises(BadModelFile, match="could not load"):
        await engine.chat(ask("hi"), "empty")
    assert engine.engine_pid is None


def test_cli_refuses_a_bad_gguf_with_one_line_and_its_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 0))
    env = {**os.environ, "LOCALINFER_HOME": str(tmp_path), "LOCALINFER_SCAN_DEFAULT_PORTS": "0"}
    done = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "chat", "-m", str(bad),
                           "hello"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == BadModelFile.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.gguf" in lines[0] and "Traceback" not in done.stderr


async def test_a_model_that_cannot_fit_in_memory_is_refused_before_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from localinfer.assets.system import Memory
    from localinfer.backends.embedded import backend as embedded

    monkeypatch.setattr(embedded, "memory", lambda: Memory(total=2**30, available=50_000_000))
    engine = EmbeddedBackend(make_settings(tmp_path, embedded_context=8192, embedded_parallel=4))
    with pytest.raises(BackendError, match=r"needs about .* available; lower embedded_context"):
        await engine.chat(ask("hi"), MODEL_ID)
    assert engine.engine_pid is None  # llama.cpp was never asked


async def test_answers_name_the_model_by_its_id(backend: EmbeddedBackend) -> None:
    reply = await backend.chat(ask("Say yes.", max_tokens=3), MODEL_ID)
    assert reply.model == MODEL_ID
    chunks = [c async for c in backend.stream_chat(ask("Say yes.", max_tokens=3), MODEL_ID)]
    assert {c.model for c in chunks} == {MODEL_ID}


async def test_max_tokens_beyond_the_context_is_refused_before_the_engine(
        tmp_path: Path) -> None:
    # The tier's capabilities say its context; the router refuses before choosing it.
    async with AsyncClient(make_settings(tmp_path, embedded_context=512)) as client:
        with pytest.raises(UsageError, match=r"max_tokens=4000 .* context \(512 tokens") \
                as info:
            await client.chat("hi", model=MODEL_ID, max_tokens=4000)
        [engine] = [b for b in await client.router.embedded_backends()
                    if isinstance(b, EmbeddedBackend)]
        assert engine.engine_pid is None
    assert getattr(info.value, "param", None) == "max_tokens"
