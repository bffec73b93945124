"""``Discovery``: a sweep is cached for ``discovery_ttl`` seconds and shared by
concurrent callers (counted by the requests a stand-in network sees)."""

from __future__ import annotations

import asyncio

import pytest

from localinfer.discovery import Discovery
from localinfer.http import EgressPolicy
from localinfer.settings import Settings
from tests.fakes.network import FakeNetwork, ok

URL = "http://127.0.0.1:7100"
OLLAMA = {"/": ok("Ollama is running"), "/api/version": ok({"version": "0.5.7"}),
          "/api/tags": ok({"models": [{"name": "smollm2:135m"}]}), "/api/ps": ok({"models": []})}


def make(ttl: float = 60.0, held: bool = False) -> tuple[Discovery, FakeNetwork]:
    network = FakeNetwork({("127.0.0.1", 7100): OLLAMA}, held=held)
    settings = Settings(scan_default_ports=False, servers=[URL], discovery_ttl=ttl)
    return Discovery(settings, EgressPolicy(), transport=network.transport), network


async def one_sweep_requests() -> int:
    discovery, network = make()
    await discovery.servers()
    return len(network.seen)


async def test_concurrent_callers_share_one_sweep() -> None:
    per_sweep = await one_sweep_requests()
    discovery, network = make(held=True)
    callers = [asyncio.ensure_future(discovery.servers()) for _ in range(5)]
    await network.arrived.wait()  # the sweep is in flight: every caller has asked
    network.release()
    results = await asyncio.gather(*callers)
    assert len(network.seen) == per_sweep
    assert all([s.kind for s in r] == ["ollama"] for r in results)


async def test_cached_within_ttl_and_refresh_forces_a_sweep() -> None:
    per_sweep = await one_sweep_requests()
    discovery, network = make()
    await discovery.servers()
    await discovery.servers()
    assert len(network.seen) == per_sweep
    await discovery.servers(refresh=True)
    assert len(network.seen) == 2 * per_sweep


async def test_zero_ttl_sweeps_every_time() -> None:
    per_sweep = await one_sweep_requests()
    discovery, network = make(ttl=0)
    await discovery.servers()
    await discovery.servers()
    assert len(network.seen) == 2 * per_sweep


async def test_invalidate_forgets_the_cache() -> None:
    per_sweep = await one_sweep_requests()
    discovery, network = make()
    await discovery.servers()
    discovery.invalidate()
    await discovery.servers()
    assert len(network.seen) == 2 * per_sweep


async def test_callers_get_their_own_copies() -> None:
    discovery, _ = make()
    first = await discovery.servers()
    first[0].models.clear()
    first.clear()
    [server] = await discovery.servers()
    assert [m.id for m in server.models] == ["smollm2:135m"]


async def test_a_cancelled_caller_does_not_cancel_the_shared_sweep() -> None:
    discovery, network = make(held=True)
    impatient = asyncio.ensure_future(discovery.servers())
    patient = asyncio.ensure_future(discovery.servers())
    await network.arrived.wait()  # the shared sweep is in flight
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    network.release()
    assert [s.kind for s in await patient] == ["ollama"]


def test_usable_from_one_event_loop_after_another() -> None:
    # A sync wrapper may run each call in a fresh event loop.
    discovery, _ = make(ttl=0)
    for _ in range(2):
        assert [s.kind for s in asyncio.run(discovery.servers())] == ["ollama"]
