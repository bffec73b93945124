"""Sandbox and MCP benchmarks: cold start (first compile, cached module in a fresh
process), warm call p50, concurrent calls/s, and the MCP tool-call round trip over stdio.

    .venv/bin/python bench/bench_sandbox.py [--calls 50] [--skip-compile] [--skip-mcp]

The first-compile figure compiles into a temporary cache (the real cache is left alone);
everything else uses the real cache (``~/.cache/localinfer/sandbox``). Prints a markdown
table with the machine's details; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localinfer.sandbox import Sandbox, get_runtime  # noqa: E402
from localinfer.sandbox.pool import Worker  # noqa: E402
from localinfer.sandbox.runtimes import wasmtime_version  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def first_compile(runtime: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cache:
        started = time.monotonic()
        worker = Worker(get_runtime(runtime), Path(cache))
        info = worker.wait_ready()
        ready = time.monotonic() - started
        worker.stop()
    return {"ready_s": ready, "compile_s": info.get("compile_seconds"),
            "cwasm_bytes": info.get("cwasm_bytes")}


def fresh_process(runtime: str, runs: int) -> dict[str, float]:
    """Spawn + deserialize the cached module + the first call, in a new process each time."""
    ready: list[float] = []
    first: list[float] = []
    for _ in range(runs):
        with Sandbox(warm=0) as sb:
            started = time.monotonic()
            r = sb.run("print(1)", runtime=runtime, timeout=60)
            first.append(time.monotonic() - started)
            assert r.ok, r
        started = time.monotonic()
        worker = Worker(get_runtime(runtime), None)
        worker.wait_ready()
        ready.append(time.monotonic() - started)
        worker.stop()
    return {"ready_p50_s": statistics.median(ready), "first_call_p50_s": statistics.median(first)}


def warm_calls(runtime: str, calls: int) -> dict[str, float]:
    with Sandbox(warm=1) as sb:
        sb.run("print(1)", runtime=runtime, timeout=60)
        walls: list[float] = []
        for _ in range(calls):
            started = time.monotonic()
            r = sb.run("print(1)", runtime=runtime)
            walls.append(time.monotonic() - started)
            assert r.ok
    return {"p50_ms": 1000 * statistics.median(walls), "p95_ms": 1000 * pct(walls, 0.95)}


def concurrent(runtime: str, calls: int, threads: int, workers: int) -> dict[str, float]:
    with Sandbox(warm=workers, max_workers=workers) as sb:
        with ThreadPoolExecutor(workers) as ex:  # warm every worker first
            list(ex.map(lambda _: sb.run("print(1)", runtime=runtime, timeout=60),
                        range(workers)))
        started = time.monotonic()
        with ThreadPoolExecutor(threads) as ex:
            results = list(ex.map(lambda i: sb.run(f"print({i})", runtime=runtime,
                                                   timeout=60), range(calls)))
        elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    return {"calls_per_s": calls / elapsed}


def mcp_round_trip(calls: int) -> dict[str, float]:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from localinfer.rag import Index
    from localinfer.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    index_path = home / "index.db"
    with Index(Settings(home=home, index_path=index_path)) as index:
        index.add([REPO / "tests" / "corpus"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update(LOCALINFER_HOME=str(home), LOCALINFER_INDEX_PATH=str(index_path),
               LOCALINFER_SCAN_DEFAULT_PORTS="false", LOCALINFER_EMBEDDED="false")
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "localinfer.cli.main", "mcp"], env=env)
    out: dict[str, float] = {}

    async def run() -> None:
        started = time.monotonic()
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            out["initialize_s"] = time.monotonic() - started
            for tool, args in (("search_documents", {"query": "when is the boiler serviced"}),
                               ("run_python", {"code": "print(1)"})):
                await s.call_tool(tool, args)  # first call loads the embedder / a worker
                walls = []
                for _ in range(calls):
                    t0 = time.monotonic()
                    result = await s.call_tool(tool, args)
                    walls.append(time.monotonic() - t0)
                    assert not result.isError, result.content
                out[f"{tool}_p50_ms"] = 1000 * statistics.median(walls)

    anyio.run(run)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--fresh-runs", type=int, default=5)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-mcp", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    results: dict[str, Any] = {"machine": {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "python": platform.python_version(), "wasmtime": wasmtime_version(),
        "load_average_start": [round(x, 2) for x in load]}}
    for runtime in ("python", "micropython"):
        r: dict[str, Any] = {}
        if not args.skip_compile:
            r["first_compile"] = first_compile(runtime)
        r["fresh_process"] = fresh_process(runtime, args.fresh_runs)
        r["warm"] = warm_calls(runtime, args.calls)
        r["concurrent"] = concurrent(runtime, args.calls, threads=8, workers=2)
        results[runtime] = r
    if not args.skip_mcp:
        results["mcp"] = mcp_round_trip(max(10, args.calls // 2))
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))
    m = results["machine"]
    print(f"\n{m['cores']} cores, Python {m['python']}, wasmtime {m['wasmtime']}, load average "
          f"{m['load_average_start'][0]} → {m['load_average_end'][0]}\n")
    print("| measure | CPython 3.12 (WASI) | MicroPython (WASI) |")
    print("|---|---|---|")

    def row(label: str, key: tuple[str, ...], fmt: str) -> None:
        cells = []
        for runtime in ("python", "micropython"):
            value: Any = results[runtime]
            for k in key:
                value = value.get(k) if isinstance(value, dict) else None
            cells.append(fmt.format(value) if value is not None else "—")
        print(f"| {label} | {' | '.join(cells)} |")

    row("first compile into the cache (worker ready)", ("first_compile", "ready_s"), "{:.1f} s")
    row("fresh process from the cached module: ready", ("fresh_process", "ready_p50_s"),
        "{:.3f} s")
    row("fresh process: spawn + first call", ("fresh_process", "first_call_p50_s"), "{:.3f} s")
    row(f"warm call p50 (`print(1)`, {args.calls} calls)", ("warm", "p50_ms"), "{:.1f} ms")
    row("warm call p95", ("warm", "p95_ms"), "{:.1f} ms")
    row("concurrent: 8 threads, 2 workers", ("concurrent", "calls_per_s"), "{:.1f} calls/s")
    if "mcp" in results:
        mcp = results["mcp"]
        print(f"\nMCP over stdio: initialize {mcp['initialize_s']:.2f} s; search_documents "
              f"p50 {mcp['search_documents_p50_ms']:.1f} ms; run_python p50 "
              f"{mcp['run_python_p50_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
