"""Benchmark the browser sandbox; prints a markdown table (collected into docs/benchmarks.md).

    .venv/bin/python bench/bench_browser_sandbox.py [--runs 3] [--calls 30]

Headless Debian Chromium (Playwright), the gateway serving /ui/ on loopback. Per runtime
(CPython 3.12 WASI, MicroPython WASI) and per run, a fresh browser profile:

(a) cold: the first ``li.sandbox.prewarm()`` in the profile — fetch the .wasm from the
    gateway, sha256 in the page (SubtleCrypto), write the memory cap into the module,
    ``WebAssembly.compile``, start the worker, post it the module and run ``pass`` once
    (V8 compiles the functions a run touches lazily, on that first run);
(b) cached: the same in a new page of the same profile (the .wasm comes from the HTTP
    cache — ``immutable`` — and is verified and compiled again: Chromium cannot store a
    compiled module in IndexedDB any more);
(c) warm call: ``print(1)`` on the warm worker, ``--calls`` times: p50 and p95 of the
    result's ``wallSeconds``;
(d) fresh worker: ``close()`` then one ``print(1)`` — worker start, module post,
    instantiate, run (what the call after a deadline costs), median of 3.

Baseline in the same run: the Python sandbox (wasmtime, a warm worker process, the cached
``.cwasm``), the same ``print(1)``, p50.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser.harness import BROWSER_FLAGS, CHROMIUM
from tests.fakes.serve import AppServer
from tests.gateway_harness import gateway_app

from localinfer import sandbox

OPEN_JS = """async () => {
  const { LocalInfer } = await import('/ui/localinfer.js');
  window.li = await LocalInfer.connect({ gateway: null, servers: [], browser: false });
}"""

PREWARM_JS = """async (runtime) => {
  const t0 = performance.now();
  await window.li.sandbox.prewarm(runtime);
  const s = window.li.sandbox.stats;
  return { total_ms: performance.now() - t0, fetch_ms: s.fetchMs[runtime],
           compile_ms: s.compileMs[runtime] };
}"""

FRESH_JS = """async (runtime) => {
  window.li.sandbox.close();
  const t0 = performance.now();
  const r = await window.li.sandbox.run('print(1)', { runtime });
  if (r.stdout !== '1\\n') throw new Error(JSON.stringify(r));
  return performance.now() - t0;
}"""

WARM_JS = """async ([runtime, calls]) => {
  const out = [];
  for (let i = 0; i < calls; i++) {
    const r = await window.li.sandbox.run('print(1)', { runtime });
    if (r.stdout !== '1\\n') throw new Error(JSON.stringify(r));
    out.push(r.wallSeconds * 1000);
  }
  return out;
}"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def browser_run(pw: Any, base: str, runtime: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM),
                                                    headless=True, args=BROWSER_FLAGS)
        try:
            page = ctx.new_page()
            page.goto(f"{base}/ui/manifest.json")
            page.evaluate(OPEN_JS)
            cold = page.evaluate(PREWARM_JS, runtime)
            page.close()
            page = ctx.new_page()
            page.goto(f"{base}/ui/manifest.json")
            page.evaluate(OPEN_JS)
            cached = page.evaluate(PREWARM_JS, runtime)
            warm = page.evaluate(WARM_JS, [runtime, calls])
            fresh = statistics.median(page.evaluate(FRESH_JS, runtime) for _ in range(3))
        finally:
            ctx.close()
    return {"cold_ms": cold["total_ms"], "cold_compile_ms": cold["compile_ms"],
            "cold_fetch_ms": cold["fetch_ms"], "cached_ms": cached["total_ms"],
            "cached_compile_ms": cached["compile_ms"], "cached_fetch_ms": cached["fetch_ms"],
            "fresh_ms": fresh, "warm_p50_ms": statistics.median(warm),
            "warm_p95_ms": pct(warm, 0.95)}


def python_warm(runtime: str, calls: int) -> float:
    with sandbox.Sandbox(warm=1) as sb:
        sb.prewarm(runtime)
        sb.run("print(1)", runtime=runtime, timeout=120)
        walls = []
        for _ in range(calls):
            t0 = time.perf_counter()
            r = sb.run("print(1)", runtime=runtime)
            walls.append((time.perf_counter() - t0) * 1000)
            assert r.text == "1\n", r
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="bench-sandbox-home-"))
    server = AppServer(gateway_app(home, [], embedded=False), 0).start()
    results: dict[str, list[dict[str, float]]] = {"python": [], "micropython": []}
    native: dict[str, float] = {}
    try:
        with sync_playwright() as pw:
            version = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=BROWSER_FLAGS)
            browser_version = version.version
            version.close()
            for _ in range(args.runs):
                for runtime in results:
                    results[runtime].append(browser_run(pw, server.base_url, runtime,
                                                        args.calls))
        for runtime in results:
            native[runtime] = python_warm(runtime, args.calls)
    finally:
        server.stop()
    load_after = os.getloadavg()[0]

    def med(runtime: str, key: str) -> float:
        return statistics.median(r[key] for r in results[runtime])

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Chromium {browser_version}; load average {load_before:.1f} at start, "
          f"{load_after:.1f} at end; medians of {args.runs} runs, {args.calls} warm calls each\n")
    print("| measure | CPython 3.12 (WASI) | MicroPython (WASI) |")
    print("|---|---|---|")
    rows = [
        ("cold `prewarm()`: fetch + sha256 + compile + worker + first run (fresh profile)",
         "cold_ms"),
        ("  of which fetch + sha256 (26 MB / 371 KB from loopback)", "cold_fetch_ms"),
        ("  of which `WebAssembly.compile`", "cold_compile_ms"),
        ("cached `prewarm()`: new page, .wasm from the HTTP cache, verify + compile + worker "
         "+ first run", "cached_ms"),
        ("  of which `WebAssembly.compile`", "cached_compile_ms"),
        ("warm call p50 (`print(1)`)", "warm_p50_ms"),
        ("warm call p95", "warm_p95_ms"),
        ("fresh worker (after a deadline): start + instantiate + `print(1)`", "fresh_ms"),
    ]
    for label, key in rows:
        print(f"| {label} | {med('python', key):.1f} ms | {med('micropython', key):.1f} ms |")
    print(f"| Python sandbox (wasmtime, warm worker process) warm call p50 | "
          f"{native['python']:.1f} ms | {native['micropython']:.1f} ms |")
    print(f"| browser / wasmtime, warm call p50 | "
          f"{med('python', 'warm_p50_ms') / native['python']:.2f}× | "
          f"{med('micropython', 'warm_p50_ms') / native['micropython']:.2f}× |")
    print("\nraw runs:", results)
    print("python sandbox warm p50:", native)


if __name__ == "__main__":
    main()
