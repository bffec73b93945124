"""Benchmark in-browser embeddings and documents; prints markdown (collected into
docs/benchmarks.md).

    .venv/bin/python bench/bench_browser_documents.py [--runs 3] [--texts 64]

Headless Debian Chromium (Playwright) on the static export served by a plain loopback
static server (no gateway: the page embeds with transformers.js in its worker, 1 thread,
since a static host is not cross-origin isolated). Each run uses a fresh profile:

(a) load: cold (model files downloaded, sha256-verified, cached, ONNX session created) and
    cached (a new page in the same profile: read from the cache, verified, session);
(b) sentences/s: the same --texts corpus lines embedded in the page and by Python's
    OnnxEmbedder (fp32 and the int8 default), both on 1 thread, interleaved;
(c) search latency over synthetic collections of 1k and 10k chunks (random unit vectors,
    texts drawn from the corpus's words): the in-page hybrid search (exact cosine scan +
    BM25 + RRF) with the query vector precomputed, p50/p95 of 50 queries;
(d) IndexedDB size per 1k chunks: navigator.storage.estimate() before/after storing 1k
    chunks (384 float32 + text) through the page's Store.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser.harness import BROWSER_FLAGS, CHROMIUM, static_site
from tests.fakes.serve import AppServer

from localinfer.rag import load_default_embedder
from localinfer.settings import Settings
from localinfer.web.export import export_site

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"

CONNECT = """async () => {
  const m = await import('/localinfer.js');
  window.li = await m.LocalInfer.connect({ gateway: null, servers: [], threads: 1,
    onDisclose: () => true });
  const t0 = performance.now();
  await li.embedder.ensure();
  return { load_ms: performance.now() - t0, loaded: li.embedder.loaded };
}"""

EMBED = """async (texts) => {
  const t0 = performance.now();
  await li.embeddings.create({ input: texts });
  return performance.now() - t0;
}"""

SEARCH = """async ([n, queries]) => {
  const { SearchIndex } = await import('/lib/documents/search.js');
  const words = (await (await fetch('/lib/documents/chunking.js')).text())
    .toLowerCase().match(/[a-z]{3,}/g);
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const unit = () => { const v = new Float32Array(384); let s = 0;
    for (let j = 0; j < 384; j++) { v[j] = rand() - 0.5; s += v[j] * v[j]; }
    s = Math.sqrt(s); for (let j = 0; j < 384; j++) v[j] /= s; return v; };
  const rows = [];
  for (let i = 0; i < n; i++) {
    const pick = () => words[Math.floor(rand() * words.length)];
    const text = Array.from({ length: 120 }, pick).join(' ');
    rows.push({ collection: 'b', name: `d${i % 50}`, seq: i, text, heading: '', start_line: 1,
      end_line: 2, vector: unit().buffer });
  }
  const t0 = performance.now();
  const index = new SearchIndex(rows, 384);
  const build = performance.now() - t0;
  const times = [];
  for (const q of queries) {
    const v = unit();
    const t = performance.now();
    index.search(q, v, 5);
    times.push(performance.now() - t);
  }
  return { build, times };
}"""

STORE = """async () => {
  const { Store } = await import('/lib/documents/store.js');
  const store = await Store.open('bench-size');
  await store.clear();
  const before = (await navigator.storage.estimate()).usage ?? 0;
  const text = 'The starter is fed with equal weights of rye flour and water. '.repeat(9);
  for (let d = 0; d < 10; d++) {
    const rows = [];
    for (let i = 0; i < 100; i++) {
      const v = new Float32Array(384).map(() => Math.random() - 0.5);
      rows.push({ collection: 'b', name: `d${d}`, seq: i, text, heading: 'Bench', start_line: i,
        end_line: i + 3, vector: v.buffer });
    }
    await store.put({ collection: 'b', name: `d${d}`, kind: 'text', sha256: String(d), bytes: 1,
      chunks: 100, added: Date.now() }, rows, { name: 'b', model: 'x', dim: 384, created: 0 });
  }
  const after = (await navigator.storage.estimate()).usage ?? 0;
  return { bytes: after - before, text_chars: text.length };
}"""


def corpus_lines(n: int) -> list[str]:
    lines: list[str] = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix == ".pdf":
            continue
        lines += [ln.strip() for ln in path.read_text().splitlines() if len(ln.strip()) > 30]
    return list(dict.fromkeys(lines))[:n]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--texts", type=int, default=64)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    texts = corpus_lines(args.texts)
    queries = [f"{w} rules for the kitchen" for w in ("flour", "water", "oven", "time", "wind")]
    queries = (queries * 10)[:50]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        site_dir = Path(tmp) / "site"
        export_site(site_dir, Settings(home=home, scan_default_ports=False))
        py = {p: load_default_embedder(Settings(home=home, embed_threads=1, embed_precision=p))
              for p in ("fp32", "int8")}
        server = AppServer(static_site(site_dir)).start()
        results: dict[str, list[float]] = {k: [] for k in (
            "cold", "cached", "page", "fp32", "int8", "s1k", "s1k95", "s10k", "s10k95",
            "b10k", "idb")}
        load_before = os.getloadavg()[0]
        with sync_playwright() as pw:
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as profile:
                    ctx = pw.chromium.launch_persistent_context(
                        profile, executable_path=str(CHROMIUM), headless=True,
                        args=BROWSER_FLAGS)
                    try:
                        page = ctx.new_page()
                        page.set_default_timeout(600_000)
                        page.goto(f"{server.base_url}/?gateway=none&servers=none")
                        cold = page.evaluate(CONNECT)
                        page.close()
                        page = ctx.new_page()
                        page.set_default_timeout(600_000)
                        page.goto(f"{server.base_url}/?gateway=none&servers=none")
                        cached = page.evaluate(CONNECT)
                        assert cached["loaded"]["fetched_bytes"] == 0
                        results["cold"].append(cold["load_ms"])
                        results["cached"].append(cached["load_ms"])
                        page.evaluate(EMBED, texts[:4])  # warm-up
                        results["page"].append(len(texts) / (page.evaluate(EMBED, texts) / 1000))
                        for p, emb in py.items():
                            emb.embed(texts[:4])
                            t0 = time.perf_counter()
                            emb.embed(texts)
                            results[p].append(len(texts) / (time.perf_counter() - t0))
                        for n, key in ((1000, "s1k"), (10000, "s10k")):
                            out = page.evaluate(SEARCH, [n, queries])
                            results[key].append(statistics.median(out["times"]))
                            results[key + "95"].append(pct(out["times"], 0.95))
                            if n == 10000:
                                results["b10k"].append(out["build"])
                        results["idb"].append(page.evaluate(STORE)["bytes"])
                    finally:
                        ctx.close()
        server.stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} at the start; {args.runs} runs, {len(texts)} texts; medians")
    print()
    print("| measure | in the page (transformers.js, worker, 1 thread) | Python | ratio |")
    print("|---|---|---|---|")
    print(f"| sentences/s (same {len(texts)} corpus lines) | {med['page']:.1f} | fp32 "
          f"{med['fp32']:.1f} / int8 default {med['int8']:.1f} | "
          f"{med['page'] / med['fp32']:.2f}× fp32, {med['page'] / med['int8']:.2f}× int8 |")
    print(f"| search p50 / p95, 1k chunks (query vector given) | {med['s1k']:.1f} / "
          f"{med['s1k95']:.1f} ms | | |")
    print(f"| search p50 / p95, 10k chunks | {med['s10k']:.1f} / {med['s10k95']:.1f} ms | | |")
    print(f"| building the 10k search snapshot (once per change) | {med['b10k']:.0f} ms | | |")
    print(f"| IndexedDB per 1k chunks (384 float32 + ~560 chars) | "
          f"{med['idb'] / 1e6:.2f} MB | | |")
    print(f"| model load, cold (23.4 MB fetched + sha256 + Cache API + session) | "
          f"{med['cold']:.0f} ms | | |")
    print(f"| model load, cached (0 bytes fetched; read + sha256 + session) | "
          f"{med['cached']:.0f} ms | | |")


if __name__ == "__main__":
    main()
