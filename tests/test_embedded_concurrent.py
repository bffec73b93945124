"""Several requests at once in the embedded engine (llama.cpp's continuous batching), for
real, on the bundled SmolLM2-135M-Instruct: streams decoded together progress
interleaved, and cancelling or breaking one leaves the others going. Event-based: no
timings are asserted (a loaded machine only slows everything)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from localinfer.backends.embedded import EmbeddedBackend
from localinfer.errors import ContextLengthExceeded
from localinfer.settings import Settings
from localinfer.types import ChatRequest
from tests.support.engine import ask, endless, wait_all_slots_free

pytestmark = pytest.mark.integration

PATIENCE = 300.0  # seconds: generous, CI runs on a loaded machine


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(Settings(home=tmp_path_factory.mktemp("home"),
                                       scan_default_ports=False, embedded_parallel=4))
    yield backend
    asyncio.run(backend.stop_engine())


async def text_of(engine: EmbeddedBackend, request: ChatRequest,
                  log: list[int] | None = None,
                  tag: int = 0) -> str:
    out = ""
    async for chunk in engine.stream_chat(request, "default"):
        if chunk.text:
            out += chunk.text
            if log is not None:
                log.append(tag)
    return out


PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.",
           "Explain in two sentences why the sky is blue."]


async def test_streams_are_decoded_together_and_interleave(engine: EmbeddedBackend) -> None:
    # Greedy answers are not compared with the solo ones: a batch of several sequences
    # may round a near-tie differently (llama.cpp documents as much for -np > 1).
    requests = [ask(p, temperature=0, max_tokens=24, ignore_eos=True) for p in PROMPTS]
    log: list[int] = []
    together = await asyncio.wait_for(asyncio.gather(
        *(text_of(engine, r, log, i) for i, r in enumerate(requests))), PATIENCE)
    assert all(together)
    # Interleaved: every stream's first text came before any stream's last.
    firsts = [log.index(i) for i in range(len(requests))]
    lasts = [len(log) - 1 - log[::-1].index(i) for i in range(len(requests))]
    assert max(firsts) < min(lasts), log


async def test_a_request_arriving_mid_stream_gets_its_answer_before_the_first_ends(
        engine: EmbeddedBackend) -> None:
    first = engine.stream_chat(endless(temperature=0.8, max_tokens=200), "default")
    seen = 0
    async for chunk in first:
        seen += bool(chunk.text)
        if seen >= 3:
            break
    # The second request's whole answer arrives while the first is still open and
    # generating (it cannot end before 200 tokens).
    second = await asyncio.wait_for(engine.chat(ask("Say yes.", temperature=0, max_tokens=8),
                                                "default"), PATIENCE)
    assert second.text
    more = 0
    async for chunk in first:
        more += bool(chunk.text)
        if more >= 3:
            break
    await first.aclose()  # type: ignore[attr-defined]
    assert more >= 3


async def test_cancelling_one_stream_leaves_the_other_to_finish(
        engine: EmbeddedBackend) -> None:
    started = asyncio.Event()

    async def doomed() -> None:
        async for chunk in engine.stream_chat(endless(), "default"):
            if chunk.text:
                started.set()

    task = asyncio.create_task(doomed())
    survivor = asyncio.create_task(text_of(engine, endless(temperature=0, max_tokens=24)))
    await asyncio.wait_for(started.wait(), PATIENCE)
    pid = engine.engine_pid
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = await asyncio.wait_for(survivor, PATIENCE)
    assert text and engine.engine_pid == pid  # same engine, not restarted
    assert await wait_all_slots_free(engine)  # llama.cpp itself stopped the cancelled one


async def test_a_bad_request_does_not_break_the_others(engine: EmbeddedBackend) -> None:
    good = asyncio.create_task(text_of(engine, ask(PROMPTS[0], temperature=0, max_tokens=32)))
    too_long = ask("lighthouse " * 5000, max_tokens=8)  # far beyond the context
    with pytest.raises(ContextLengthExceeded):
        await asyncio.wait_for(text_of(engine, too_long), PATIENCE)
    assert await asyncio.wait_for(good, PATIENCE)


async def test_more_requests_than_slots_wait_their_turn(engine: EmbeddedBackend) -> None:
    plain = [ask(f"Say the word {w}.", max_tokens=12, temperature=0)
             for w in ("apple", "river", "stone", "cloud", "bread", "glass")]
    results = await asyncio.wait_for(asyncio.gather(*(engine.chat(r, "default") for r in plain)),
                                     PATIENCE)
    assert all(r.text for r in results)
