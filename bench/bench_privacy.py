"""What privacy costs: the egress ledger and the consent gate, without the network.

    .venv/bin/python bench/bench_privacy.py [--repeats 15]

1. Recording one request in the ledger (the recorder call every request pays: a
   buffered append, no I/O).
2. A discovery-sized burst of 12 records through ``EgressPolicy.record``.
3. One request through the guarded HTTP layer (``make_client`` over an in-process
   ``MockTransport``), with the ledger attached vs with no recorder.
4. Flushing a full batch of 512 records to SQLite (one WAL transaction + retention).
5. ``localinfer privacy``'s report over a ledger at its row cap (100,000 records).
6. The consent gate: ``ConsentStore.valid`` (reads consent.json) and the remote tier's
   ``candidates()`` with one configured provider (reads remotes.json and consent.json).

Each figure is the median of --repeats runs, each run timing many calls. Prints a
markdown table with the machine and the command. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.support.transport import mock_transport

from localinfer.consent import ConsentStore
from localinfer.http import EgressPolicy, EgressRecord, make_client
from localinfer.ledger import EgressLedger
from localinfer.remote import ConsentedRemoteTier, ProviderStore, RemoteProvider
from localinfer.settings import Settings


def record(i: int = 0, t: float | None = None) -> EgressRecord:
    return EgressRecord(time=time.time() if t is None else t, method="GET", scheme="http",
                        host="127.0.0.1", port=11434 + i % 7, path="/api/tags", bytes_sent=0,
                        bytes_received=512, status=200, network="loopback", tier="local",
                        purpose="discovery")


def per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Median seconds per call."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def once(fn: Callable[[], object], repeats: int, setup: Callable[[], object]) -> float:
    samples = []
    for _ in range(repeats):
        setup()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def http_per_request(policies: list[EgressPolicy], calls: int,
                           repeats: int) -> list[float]:
    """Median seconds per request for each policy, runs interleaved so that load drift
    on a shared machine hits every policy alike."""
    transport = mock_transport(lambda r: httpx.Response(200, json={"models": []}))
    samples: list[list[float]] = [[] for _ in policies]
    clients = [make_client(p, tier="local", transport=transport) for p in policies]
    for _ in range(repeats):
        for client, into in zip(clients, samples, strict=True):
            start = time.perf_counter()
            for _ in range(calls):
                await client.get("http://127.0.0.1:11434/api/tags")
            into.append((time.perf_counter() - start) / calls)
    for client in clients:
        await client.aclose()
    return [statistics.median(s) for s in samples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    r = args.repeats
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ledger = EgressLedger(home / "a.sqlite3", flush_interval=3600, batch_size=10**9)
        rec = record()
        rows.append(("record one request (buffered append)",
                     f"{per_call(lambda: ledger(rec), 20_000, r) * 1e6:.2f} µs"))
        ledger.flush()

        policy = EgressPolicy(recorders=[ledger])
        burst = [record(i) for i in range(12)]

        def sweep() -> None:
            for item in burst:
                policy.record(item)

        rows.append(("12-record discovery burst via EgressPolicy.record",
                     f"{per_call(sweep, 2_000, r) * 1e6:.1f} µs"))
        ledger.flush()

        bare, with_ledger = asyncio.run(http_per_request([EgressPolicy(), policy], 300, r * 2))
        rows.append(("one request through make_client, no recorder",
                     f"{bare * 1e6:.0f} µs"))
        rows.append(("one request through make_client, ledger attached",
                     f"{with_ledger * 1e6:.0f} µs (+{(with_ledger - bare) * 1e6:.1f} µs)"))
        ledger.close()

        writer = EgressLedger(home / "b.sqlite3", flush_interval=3600, batch_size=10**9)
        batch = [record(i) for i in range(512)]

        def fill() -> None:
            for item in batch:
                writer(item)

        rows.append(("flush 512 records to SQLite (one transaction, retention)",
                     f"{once(writer.flush, r, fill) * 1e3:.2f} ms"))
        writer.close()

        full = EgressLedger(home / "c.sqlite3", flush_interval=3600, batch_size=10**9,
                            max_rows=100_000)
        now = time.time()
        for i in range(100_000):
            item = record(i, t=now - 100_000 + i)
            if i % 10 == 0:  # some traffic that left the machine
                item = EgressRecord(**{**item.__dict__, "host": f"10.0.0.{i % 5}",
                                       "network": "private"})
            full(item)
        full.flush()
        rows.append(("privacy report over 100,000 records",
                     f"{once(full.report, r, lambda: None) * 1e3:.1f} ms"))
        full.close()

        url = "https://api.example.com/v1"
        ProviderStore(home).add(RemoteProvider.checked("cloud", url, "KEY", ["m"]))
        store = ConsentStore(home)
        store.grant("cloud", url)
        rows.append(("consent check (reads consent.json)",
                     f"{per_call(lambda: store.valid('cloud', url), 2_000, r) * 1e6:.0f} µs"))
        tier = ConsentedRemoteTier(Settings(home=home), EgressPolicy())

        async def candidates() -> float:
            samples = []
            for _ in range(r):
                start = time.perf_counter()
                for _ in range(500):
                    await tier.candidates("m", "chat")
                samples.append((time.perf_counter() - start) / 500)
            return statistics.median(samples)

        rows.append(("remote tier candidates() (no connection)",
                     f"{asyncio.run(candidates()) * 1e6:.0f} µs"))

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc), "
          f"Linux {platform.release()}, Python {platform.python_version()}, "
          f"load average during run start: {load}")
    print(f"Command: `.venv/bin/python bench/bench_privacy.py --repeats {r}`")
    print()
    print("| operation | median |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
