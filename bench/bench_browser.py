"""Benchmark the browser tier; prints a markdown table (collected into docs/benchmarks.md).

    .venv/bin/python bench/bench_browser.py [--runs 3] [--tokens 64]

Headless Debian Chromium (Playwright), the gateway serving /ui/ on loopback with no chat
backend, so the page runs the bundled SmolLM2-135M-Instruct GGUF in wllama inside the
engine worker, one thread (what localinfer.js picks on <= 2 cores). Each run uses a fresh
browser profile:

(a) cold load (download from the gateway, sha256 verify, Cache API store, wllama load)
    and cached load (a new page in the same profile: read the cache, verify, load);
(b) one greedy request (temperature 0, up to --tokens tokens): time to first token (in the
    worker: chat template, tokenize, prompt, first token) and decode tokens/s =
    (tokens - 1) / (first to last token), wall; and decode tokens per CPU-second: the
    same tokens / CPU seconds of all of this browser's processes between the first and
    the last token (read from /proc when the page reports them); also for the whole
    request;
(c) main-thread lateness of a 10 ms timer during that request (p50/p99/max).

Native baseline in the same run, interleaved: llama-cpp-python (the llama.cpp the
embedded engine uses) on the same GGUF, same prompt, n_threads=1, greedy, streamed: the
same first-token and decode measures (its prompt cache reset before each request, so the
prompt is evaluated every time, as in the page), CPU from this process.
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

from localinfer.client import AsyncClient
from localinfer.gateway import create_app
from localinfer.settings import Settings

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
CLK = os.sysconf("SC_CLK_TCK")

RUN_JS = """async ({tokens, prompt}) => {
  const { LocalInfer } = await import('/ui/localinfer.js');
  const li = await LocalInfer.connect({ servers: [], onDisclose: () => true });
  const model = li.browserModel();
  const t0 = performance.now();
  await li.ensureBrowser(model);
  return { load_ms: performance.now() - t0, loaded: li.engine.loaded };
}"""

CHAT_JS = """async ({tokens, prompt}) => {
  const { LocalInfer } = await import('/ui/localinfer.js');
  window.__li ??= await LocalInfer.connect({ servers: [], onDisclose: () => true });
  const li = window.__li;
  await li.ensureBrowser(li.browserModel());
  const late = []; let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now(); late.push(now - last - 10); last = now; }, 10);
  const stream = await li.chat.completions.create({ messages: [{ role: 'user', content: prompt }],
    stream: true, max_tokens: tokens, temperature: 0 });
  let end = null;
  let first = true;
  for await (const chunk of stream) {
    if (chunk.usage) { end = chunk; await window.__mark('last'); }
    else if (first && chunk.choices[0].delta.content) {
      first = false; await window.__mark('first'); }
  }
  clearInterval(timer);
  return { usage: end.usage, timings: end.timings, late };
}"""


def browser_cpu_seconds(profile: str) -> float:
    """CPU seconds (user + system) of every process of the browser using ``profile``."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"chromium" not in cmdline:
                continue
            if profile.encode() not in cmdline and not _child_of_profile(pid, profile):
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / CLK


def _child_of_profile(pid: str, profile: str) -> bool:
    # Renderer and utility processes carry no --user-data-dir; walk up to the browser.
    try:
        for _ in range(4):
            ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if ppid in ("0", "1"):
                return False
            if profile.encode() in Path(f"/proc/{ppid}/cmdline").read_bytes():
                return True
            pid = ppid
    except OSError:
        return False
    return False


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def browser_run(pw: Any, url: str, tokens: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=BROWSER_FLAGS)
        try:
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            page.goto(url)
            cold = page.evaluate(RUN_JS, {"tokens": tokens, "prompt": PROMPT})
            page2 = ctx.new_page()
            page2.set_default_timeout(300_000)
            page.close()
            page2.goto(url)
            cached = page2.evaluate(RUN_JS, {"tokens": tokens, "prompt": PROMPT})
            assert cached["loaded"]["cached"] and cached["loaded"]["fetched_bytes"] == 0
            marks: dict[str, float] = {}
            page2.expose_function("__mark", lambda name: marks.__setitem__(
                name, browser_cpu_seconds(profile)))
            page2.evaluate(CHAT_JS, {"tokens": 4, "prompt": PROMPT})  # warm-up
            cpu0, wall0 = browser_cpu_seconds(profile), time.perf_counter()
            out = page2.evaluate(CHAT_JS, {"tokens": tokens, "prompt": PROMPT})
            cpu = browser_cpu_seconds(profile) - cpu0
            wall = time.perf_counter() - wall0
        finally:
            ctx.close()
    t = out["timings"]
    n = out["usage"]["completion_tokens"]
    # Decode alone: the browser's CPU seconds between its first and its last token.
    decode_cpu = marks["last"] - marks["first"]
    return {"cold_load_ms": cold["load_ms"], "cached_load_ms": cached["load_ms"],
            "decode_tok_per_cpu_s": (t["tokens"] - 1) / decode_cpu,
            "ttft_ms": t["first_token_ms"], "template_ms": t["template_ms"],
            "prompt_tokens": t["prompt_tokens"],
            "decode_tps": (t["tokens"] - 1) / (t["decode_ms"] / 1000),
            "tokens": n, "tok_per_cpu_s": n / cpu, "cpu_per_wall": cpu / wall,
            "late_p50": pct(out["late"], 0.5), "late_p99": pct(out["late"], 0.99),
            "late_max": max(out["late"])}


def native_once(llm: Any, tokens: int) -> dict[str, float]:
    llm.reset()  # no prompt reuse: the prompt is evaluated every time, as in the page
    cpu0 = time.process_time()
    start = time.perf_counter()
    first = last = None
    cpu_first = cpu_last = 0.0
    n = 0
    for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}],
                                            max_tokens=tokens, temperature=0.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            now, cpu_now = time.perf_counter(), time.process_time()
            if first is None:
                first, cpu_first = now, cpu_now
            last, cpu_last = now, cpu_now
            n += 1
    assert first is not None and last is not None and n > 1
    cpu = time.process_time() - cpu0
    return {"ttft_ms": (first - start) * 1000, "decode_tps": (n - 1) / (last - first),
            "tokens": n, "tok_per_cpu_s": n / cpu,
            "decode_tok_per_cpu_s": (n - 1) / (cpu_last - cpu_first)}


def native_run(llm: Any, tokens: int) -> dict[str, float]:
    return native_once(llm, tokens)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--no-native", action="store_true",
                        help="required: the native baseline (llama.cpp's server, one "
                        "thread) is in bench/bench_wllama_versions.py")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp())
    settings = Settings(home=home, scan_default_ports=False, embedded=False)
    server = AppServer(create_app(settings, AsyncClient(settings))).start()
    url = f"{server.base_url}/ui/"
    llm = None
    if not args.no_native:
        # The in-process llama-cpp-python baseline left with that dependency: the native
        # baseline is llama.cpp's server in bench/bench_wllama_versions.py.
        parser.error("the native baseline moved to bench/bench_wllama_versions.py; "
                     "run this one with --no-native")
    browser: list[dict[str, float]] = []
    native: list[dict[str, float]] = []
    load = os.getloadavg()[0]
    with sync_playwright() as pw:
        version = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_FLAGS)
        chromium_version = version.version
        version.close()
        for _ in range(args.runs):
            browser.append(browser_run(pw, url, args.tokens))
            if llm is not None:
                native.append(native_run(llm, args.tokens))
    server.stop()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows) if rows else float("nan")

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Chromium {chromium_version} headless, wllama 2.4.0 (1 thread), load average at "
          f"start {load:.1f}; {args.runs} runs, {args.tokens} tokens, medians\n")
    print("| measure | in-browser (wllama, worker) | native llama.cpp (llama-cpp-python) "
          "| ratio |")
    print("|---|---|---|---|")
    b, n = med(browser, "decode_tps"), med(native, "decode_tps")
    print(f"| decode, tokens/s wall | {b:.1f} | {n:.1f} | **{b / n:.2f}×** |")
    b, n = med(browser, "decode_tok_per_cpu_s"), med(native, "decode_tok_per_cpu_s")
    print(f"| decode, tokens per CPU-second | {b:.1f} | {n:.1f} | **{b / n:.2f}×** |")
    b, n = med(browser, "tok_per_cpu_s"), med(native, "tok_per_cpu_s")
    print(f"| whole request (prompt + decode), completion tokens per CPU-second | {b:.1f} "
          f"| {n:.1f} | {b / n:.2f}× |")
    b, n = med(browser, "ttft_ms"), med(native, "ttft_ms")
    print(f"| time to first token (warm engine) | {b:.0f} ms | {n:.0f} ms | |")
    print(f"| cold load: download 98 MB + sha256 + store + load | "
          f"{med(browser, 'cold_load_ms'):.0f} ms | | |")
    print(f"| cached load: cache read + sha256 + load (0 bytes fetched) | "
          f"{med(browser, 'cached_load_ms'):.0f} ms | | |")
    print(f"| main-thread 10 ms timer lateness during decode, p50 / p99 / max | "
          f"{med(browser, 'late_p50'):.1f} / {med(browser, 'late_p99'):.1f} / "
          f"{med(browser, 'late_max'):.1f} ms | | |")
    print(f"| browser CPU per wall second during the request | "
          f"{med(browser, 'cpu_per_wall'):.2f} | | |")
    print("\nraw browser runs:", browser)
    print("raw native runs:", native)


if __name__ == "__main__":
    main()
