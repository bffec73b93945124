"""200 concurrent streaming clients against a gateway (its own process) over an
instant fake backend: every stream complete, no errors, memory bounded."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
CLIENTS = 200
CHUNKS = 20
ROUNDS = 3
# Bounded in time: the whole test gives up well inside a minute.
DEADLINE = 60.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def gateway_process() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.gateway_harness", "--chunks",
                             str(CHUNKS)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip(), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def one_stream(client: httpx.AsyncClient, i: int) -> str:
    body = {"model": "fake-model", "stream": True,
            "messages": [{"role": "user", "content": f"client {i}"}]}
    parts: list[str] = []
    done = False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return f"status {response.status_code}"
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[len("data: "):]
            if payload == "[DONE]":
                done = True
                continue
            event = json.loads(payload)
            if "error" in event:
                return f"error event {event['error']}"
            parts.extend(c["delta"].get("content") or "" for c in event["choices"])
    expected = "".join(f"t{k} " for k in range(CHUNKS))
    if not done:
        return "no [DONE]"
    return "" if "".join(parts) == expected else f"wrong text {''.join(parts)[:40]!r}"


async def round_of(url: str) -> list[str]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 trust_env=False) as client:
        results = await asyncio.gather(*(one_stream(client, i) for i in range(CLIENTS)),
                                       return_exceptions=True)
    return [f"{type(r).__name__}: {r}" if isinstance(r, BaseException) else r for r in results]


@pytest.mark.slow
def test_200_concurrent_streams_no_errors_memory_bounded(
        gateway_process: tuple[str, int]) -> None:
    url, pid = gateway_process

    async def run() -> list[int]:
        rss: list[int] = []
        for _ in range(ROUNDS):
            errors = [e for e in await round_of(url) if e]
            assert errors == [], f"{len(errors)} failed streams, e.g. {errors[:3]}"
            rss.append(rss_kib(pid))
        return rss

    rss = asyncio.run(asyncio.wait_for(run(), DEADLINE))
    # The first round grows the process to its working size (buffers, pools, imports);
    # later rounds of the same load must not keep growing it.
    growth_mib = (rss[-1] - rss[0]) / 1024
    print(f"gateway RSS after each round (KiB): {rss}")
    assert growth_mib < 20, f"RSS grew {growth_mib:.1f} MiB over {ROUNDS - 1} rounds: {rss}"
    assert rss[-1] / 1024 < 300, f"RSS {rss[-1] / 1024:.0f} MiB"
