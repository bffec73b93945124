"""Benchmark two wllama builds against each other (and native llama.cpp) on this machine.

    npm install --prefix /tmp/wl3 --ignore-scripts @wllama/wllama@3.8   # outside the repo
    .venv/bin/python bench/bench_wllama_versions.py \
        --wllama-dir /tmp/wl3/node_modules/@wllama/wllama [--runs 5] [--tokens 64] [--threads 1]

The shipped wllama (src/localinfer/web/static/vendor/wllama, the pinned 2.x) and the one in
--wllama-dir (a 3.x package: esm/index.js + esm/wasm/wllama.wasm, one build, threads chosen
at run time) each run in a module worker of a page that the gateway's own headers make
cross-origin isolated (COOP/COEP/CSP of /ui/, same origin as /ui/): the bundled
SmolLM2-135M GGUF, n_ctx 2048, n_batch 32, --threads threads, n_gpu_layers 0 (3.x skips
WebGPU then), greedy. A minimal adapter drives each version's chat API (2.x:
createChatCompletion(messages, {nPredict, sampling}); 3.x: the OpenAI-shaped
createChatCompletion({messages, max_tokens, temperature, cache_prompt: false}): its
server context would otherwise reuse the warm-up's prompt, while 2.x and native evaluate
it). Decode is timed as bench/bench_browser.py times it: (tokens - 1) / (first to last
token), wall, and the same tokens per CPU-second of all of this browser's processes
between the first and the last token. The versions and the native baseline
(llama.cpp's own llama-server from the xllamacpp wheel the embedded tier ships, run as
tests/support/llama_server.py, one slot, -t --threads; llama-cpp-python, which
bench/bench_browser.py used, is no longer installed) are interleaved within each run, the version
order alternating run to run; one fresh page (and engine) per measurement, a 4-token
warm-up request before the measured one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import FileResponse, Response  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402
from tests.browser.harness import BROWSER_FLAGS, CHROMIUM  # noqa: E402
from tests.fakes.serve import AppServer, ServerProcess, free_port  # noqa: E402

from bench_browser import CLK, PROMPT, browser_cpu_seconds  # noqa: E402
from localinfer.assets.bundled import bundled_model_path  # noqa: E402
from localinfer.client import AsyncClient  # noqa: E402
from localinfer.gateway import create_app  # noqa: E402
from localinfer.gateway.ui import security_headers  # noqa: E402
from localinfer.settings import Settings  # noqa: E402

SHIPPED = ROOT / "src" / "localinfer" / "web" / "static" / "vendor" / "wllama"

# The bench worker: loads one wllama build and times one chat; the adapter is the two
# branches on `major`.
WORKER_JS = r"""
self.document ??= { baseURI: self.location.href };
let engine = null;
let major = 0;
const quiet = { debug() {}, log() {}, warn() {}, error: console.error.bind(console) };
onmessage = async (event) => {
  const m = event.data;
  try {
    if (m.op === 'load') {
      major = m.major;
      const mod = await import(m.base + 'index.js');
      const blob = await (await fetch(m.model)).blob();
      const params = { n_ctx: 2048, n_batch: 32, n_gpu_layers: 0 };
      if (m.threads !== null) params.n_threads = m.threads;
      const t0 = performance.now();
      if (major === 2) {
        engine = new mod.Wllama({ 'single-thread/wllama.wasm': m.base + 'single-thread/wllama.wasm',
          'multi-thread/wllama.wasm': m.base + 'multi-thread/wllama.wasm' },
          { suppressNativeLog: true, logger: quiet });
      } else {
        engine = new mod.Wllama({ default: m.base + 'wllama.wasm' },
          { suppressNativeLog: true, logger: quiet });
      }
      await engine.loadModel([blob], params);
      postMessage({ op: 'loaded', load_ms: performance.now() - t0,
        threads: engine.getNumThreads(), multithread: engine.isMultithread(),
        isolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency,
        gpu: typeof navigator.gpu !== 'undefined' });
    } else if (m.op === 'chat') {
      const messages = [{ role: 'user', content: m.prompt }];
      const t0 = performance.now();
      let first = null;
      let chunks = 0;
      let text = '';
      let usage = null;
      let timings = null;
      const mark = () => {
        if (first === null) { first = performance.now(); postMessage({ op: 'first' }); }
      };
      if (major === 2) {
        const stream = await engine.createChatCompletion(messages,
          { nPredict: m.tokens, stream: true, sampling: { temp: 0 } });
        for await (const chunk of stream) { chunks += 1; mark(); text = chunk.currentText; }
      } else {
        const stream = await engine.createChatCompletion({ messages, stream: true,
          max_tokens: m.tokens, temperature: 0, cache_prompt: false });
        for await (const chunk of stream) {
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) { chunks += 1; mark(); text += delta; }
          if (chunk.usage) usage = chunk.usage;
          if (chunk.timings) timings = chunk.timings;
        }
      }
      const end = performance.now();
      postMessage({ op: 'done', tokens: usage ? usage.completion_tokens : chunks, chunks,
        first_token_ms: first - t0, decode_ms: end - first, text, timings });
    }
  } catch (err) {
    postMessage({ op: 'error', message: String(err && err.stack || err) });
  }
};
"""

RUN_JS = """async ({base, major, threads, tokens, prompt}) => {
  const worker = new Worker('/wlbench/worker.js', { type: 'module' });
  const call = (msg, onFirst) => new Promise((resolve, reject) => {
    worker.onmessage = async (event) => {
      const d = event.data;
      if (d.op === 'first' && onFirst) await window.__mark('first');
      else if (d.op === 'error') reject(new Error(d.message));
      else if (d.op === 'loaded') resolve(d);
      else if (d.op === 'done') { if (onFirst) await window.__mark('last'); resolve(d); }
    };
    worker.postMessage(msg);
  });
  const loaded = await call({ op: 'load', base, major, threads, model: '/wlbench/model.gguf' });
  await call({ op: 'chat', tokens: 4, prompt });  // warm-up
  const done = await call({ op: 'chat', tokens, prompt }, true);
  worker.terminate();
  return { loaded, done };
}"""


def bench_app(settings: Settings, site: Path, model: Path) -> Starlette:
    """The gateway, plus /wlbench/ (the bench page's files) under the gateway's headers."""
    headers = security_headers(settings)
    types = {".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html"}

    async def page(request: Request) -> Response:
        relative = request.path_params["path"]
        if relative == "model.gguf":
            return FileResponse(model, headers=headers)
        path = (site / relative).resolve()
        if site not in path.parents or not path.is_file():
            return Response("not found", status_code=404, headers=headers)
        return Response(path.read_bytes(), media_type=types.get(path.suffix, "text/plain"),
                        headers={**headers, "cache-control": "no-store"})

    return Starlette(routes=[Route("/wlbench/{path:path}", page),
                             Mount("/", app=create_app(settings, AsyncClient(settings)))])


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def native_once(url: str, pid: int, tokens: int) -> dict[str, float]:
    """One streamed greedy request to the native server; its prompt evaluated afresh."""
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
            "temperature": 0, "stream": True, "cache_prompt": False}
    start = time.perf_counter()
    first = last = None
    cpu_first = cpu_last = 0.0
    n = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300,
                      trust_env=False) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                now, cpu_now = time.perf_counter(), process_cpu_seconds(pid)
                if first is None:
                    first, cpu_first = now, cpu_now
                last, cpu_last = now, cpu_now
                n += 1
    assert first is not None and last is not None and n > 1
    return {"ttft_ms": (first - start) * 1000, "decode_tps": (n - 1) / (last - first),
            "tokens": n, "decode_tok_per_cpu_s": (n - 1) / (cpu_last - cpu_first)}


def version_of(package_dir: Path) -> str:
    return str(json.loads((package_dir / "package.json").read_text())["version"])


def build_site(site: Path, other: Path) -> dict[str, tuple[str, int]]:
    """site/: worker.js, an index.html, the shipped build and --wllama-dir's build."""
    (site / "worker.js").write_text(WORKER_JS)
    (site / "index.html").write_text("<!doctype html><title>wllama bench</title>")
    shutil.copytree(SHIPPED, site / "shipped")
    (site / "other").mkdir()
    shutil.copyfile(other / "esm" / "index.js", site / "other" / "index.js")
    shutil.copyfile(other / "esm" / "wasm" / "wllama.wasm", site / "other" / "wllama.wasm")
    manifest = json.loads((SHIPPED.parent / "manifest.json").read_text())
    shipped = next(p["version"] for p in manifest["packages"] if p["name"] == "@wllama/wllama")
    new = version_of(other)
    return {shipped: ("/wlbench/shipped/", int(shipped.split(".")[0])),
            new: ("/wlbench/other/", int(new.split(".")[0]))}


def browser_once(ctx: Any, url: str, base: str, major: int, threads: int | None,
                 tokens: int, profile: str) -> dict[str, Any]:
    page = ctx.new_page()
    page.set_default_timeout(300_000)
    marks: dict[str, float] = {}
    page.expose_function("__mark", lambda name: marks.__setitem__(
        name, browser_cpu_seconds(profile)))
    page.goto(url)
    out = page.evaluate(RUN_JS, {"base": base, "major": major, "threads": threads,
                                 "tokens": tokens, "prompt": PROMPT})
    page.close()
    done, loaded = out["done"], out["loaded"]
    n = done["tokens"]
    return {"decode_tps": (n - 1) / (done["decode_ms"] / 1000),
            "decode_tok_per_cpu_s": (n - 1) / (marks["last"] - marks["first"]),
            "ttft_ms": done["first_token_ms"], "tokens": n, "chunks": done["chunks"],
            "load_ms": loaded["load_ms"], "threads": loaded["threads"],
            "multithread": loaded["multithread"], "isolated": loaded["isolated"],
            "cores": loaded["cores"], "text": done["text"][:60]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wllama-dir", type=Path, required=True,
                        help="an installed @wllama/wllama 3.x (…/node_modules/@wllama/wllama)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", default="1",
                        help="n_threads for both builds: a number, or 'auto' (unset: each "
                             "build's own choice; the native baseline then uses 1)")
    parser.add_argument("--no-native", action="store_true")
    args = parser.parse_args()
    threads = None if args.threads == "auto" else int(args.threads)

    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp())
    site = Path(tempfile.mkdtemp()).resolve()
    versions = build_site(site, args.wllama_dir.resolve())
    settings = Settings(home=home, scan_default_ports=False, embedded=False)
    server = AppServer(bench_app(settings, site, bundled_model_path())).start()
    url = f"{server.base_url}/wlbench/index.html"
    native_server = None
    native_url = ""
    if not args.no_native:
        port = free_port()
        native_url = f"http://127.0.0.1:{port}"
        native_server = ServerProcess(
            [sys.executable, "-m", "tests.support.llama_server", "-m",
             str(bundled_model_path()), "--port", str(port), "-t", str(threads or 1),
             "-np", "1", "-c", "2048", "--no-webui"],
            f"{native_url}/health", cwd=ROOT).start()
        assert native_server.process is not None
        native_pid = native_server.process.pid
        native_once(native_url, native_pid, 4)  # warm-up
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in versions}
    native: list[dict[str, float]] = []
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=BROWSER_FLAGS)
        chromium_version = ctx.browser.version if ctx.browser else "?"
        try:
            order = list(versions)
            for run in range(args.runs):
                for version in order if run % 2 == 0 else order[::-1]:
                    base, major = versions[version]
                    row = browser_once(ctx, url, base, major, threads, args.tokens, profile)
                    rows[version].append(row)
                    print(version, row, flush=True)
                if native_server is not None:
                    native.append(native_once(native_url, native_pid, args.tokens))
                    print("native", native[-1], flush=True)
        finally:
            ctx.close()
            if native_server is not None:
                native_server.stop()
    server.stop()
    load_end = os.getloadavg()[0]

    def med(values: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(r[key]) for r in values) if values else float("nan")

    first = next(iter(rows.values()))[0]
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Linux "
          f"{platform.release()}, Chromium {chromium_version} headless; page cross-origin "
          f"isolated: {first['isolated']}, navigator.hardwareConcurrency {first['cores']}; "
          f"--threads {args.threads}; load average {load:.1f} at start, {load_end:.1f} at "
          f"end; {args.runs} runs x {args.tokens} tokens, {time.perf_counter() - started:.0f}"
          " s; medians\n")
    nat_tps, nat_cpu = med(native, "decode_tps"), med(native, "decode_tok_per_cpu_s")
    print("| wllama | threads (chosen) | decode tok/s wall | vs native | decode tok per "
          "CPU-s | vs native | first token | engine load |")
    print("|---|---|---|---|---|---|---|---|")
    for version, values in rows.items():
        tps, cpu = med(values, "decode_tps"), med(values, "decode_tok_per_cpu_s")
        chosen = sorted({(r["threads"], r["multithread"]) for r in values})
        print(f"| {version} | {chosen} | {tps:.1f} | {tps / nat_tps:.2f}× | {cpu:.1f} | "
              f"**{cpu / nat_cpu:.2f}×** | {med(values, 'ttft_ms'):.0f} ms | "
              f"{med(values, 'load_ms'):.0f} ms |")
    print(f"| native llama.cpp (llama-server, xllamacpp) | {threads or 1} | {nat_tps:.1f} | "
          f"| {nat_cpu:.1f} | | {med(native, 'ttft_ms'):.0f} ms | |")
    a, b = list(rows)
    print(f"\n{b} / {a}, decode per CPU-second: "
          f"{med(rows[b], 'decode_tok_per_cpu_s') / med(rows[a], 'decode_tok_per_cpu_s'):.2f}×"
          f"; wall: {med(rows[b], 'decode_tps') / med(rows[a], 'decode_tps'):.2f}×")


if __name__ == "__main__":
    main()
