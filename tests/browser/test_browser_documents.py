"""In-browser embeddings and private documents (issue 14), in a real headless Chromium.

The page's embeddings come from transformers.js in the embeddings worker, loading the
same MiniLM ONNX file the Python embedder runs (served from the static export, every file
sha256-verified in the page); documents are chunked by the JavaScript port of the Python
chunker, kept in IndexedDB, searched by vectors + BM25 with reciprocal rank fusion. The
static site is a plain loopback static server with no gateway behind it, and every
request it answered is recorded, so "nothing re-embedded" and "0 requests elsewhere" are
counted, not inferred.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localinfer.rag import OnnxEmbedder
from localinfer.rag.chunking import chunk_blocks
from localinfer.rag.loaders import load
from tests import test_rag_support as support
from tests.browser.conftest import NewPage
from tests.browser.harness import Recorder, static_site
from tests.gateway_harness import RunApp
from tests.test_rag_index import QUESTIONS

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

embedder = support.embedder
fp32_embedder = support.fp32_embedder
rag_home = support.rag_home

CORPUS = support.CORPUS
# What the page can read: everything in the corpus but the PDF (no PDF parser in the page).
PAGE_FILES = sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".pdf")
PAGE_QUESTIONS = [q for q in QUESTIONS if q[1] in PAGE_FILES]

CONNECT = """async () => {
  const m = await import('/localinfer.js');
  window.LI = m;
  window.li = await m.LocalInfer.connect({ gateway: null, servers: [], threads: 1,
    onDisclose: (d) => { (window.disclosures ??= []).push(d); return true; } });
  return true;
}"""


def open_page(new_page: NewPage, site: str) -> Any:
    page = new_page()
    page.goto(f"{site}/?gateway=none&servers=none")
    page.evaluate(CONNECT)
    return page


def python_chunks(name: str) -> list[dict[str, Any]]:
    path = CORPUS / name
    _, blocks = load(path, path.read_bytes())
    return [{"text": c.text, "heading": c.heading, "start_line": c.start_line,
             "end_line": c.end_line} for c in chunk_blocks(blocks)]


def page_embed(page: Any, texts: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed in the page while a main-thread timer ticks; the vectors and the tick log."""
    got: dict[str, Any] = page.evaluate("""async (texts) => {
      const ticks = [];
      const timer = setInterval(() => ticks.push(performance.now()), 50);
      const t0 = performance.now();
      const r = await li.embeddings.create({ input: texts });
      const t1 = performance.now();
      clearInterval(timer);
      const gaps = ticks.slice(1).map((t, i) => t - ticks[i]);
      return { vectors: r.data.map((d) => d.embedding), tier: r.tier, backend: r.backend,
        ms: t1 - t0, ticks: ticks.length, max_gap: Math.max(0, ...gaps),
        worker: li.embedder.worker !== null, loaded: li.embedder.loaded };
    }""", texts)
    return np.asarray(got.pop("vectors"), dtype=np.float32), got


def corpus_texts(n: int) -> list[str]:
    """Whole chunks (long inputs) first, then single lines of them (short ones)."""
    chunks = [c["text"] for name in PAGE_FILES for c in python_chunks(name)]
    lines = [ln.strip() for c in chunks for ln in c.splitlines() if len(ln.strip()) > 20]
    return list(dict.fromkeys(chunks + lines))[:n]


# -- 1. embeddings agree with the Python embedder, computed in the worker ------------------

def test_page_embeddings_match_python_from_the_worker(
        run_app: RunApp, export_dir: Path, new_page: NewPage, embedder: OnnxEmbedder,
        fp32_embedder: OnnxEmbedder) -> None:
    site = run_app(static_site(export_dir))
    page = open_page(new_page, site)
    page.evaluate("li.embeddings.create({ input: ['warm up'] })")  # load outside the timing
    texts = corpus_texts(50)
    assert len(texts) == 50
    vectors, facts = page_embed(page, texts)
    assert facts["tier"] == "browser" and facts["worker"], facts
    assert facts["backend"] == "transformers.js:all-minilm-l6-v2"
    fp32 = (vectors * fp32_embedder.embed(texts)).sum(axis=1)
    default = (vectors * embedder.embed(texts)).sum(axis=1)
    print(f"cosine to fp32: min {fp32.min():.5f}; to the int8 default: min {default.min():.5f} "
          f"mean {default.mean():.5f}; {len(texts) / facts['ms'] * 1000:.1f} texts/s; "
          f"main thread: {facts['ticks']} ticks, longest gap {facts['max_gap']:.0f} ms")
    assert fp32.min() >= 0.99
    assert default.mean() >= 0.99
    # The main thread kept running its timer while the worker embedded (a blocked thread
    # would show one tick and one long gap): generous bound, a loaded 2-core machine.
    assert facts["ticks"] >= 3 and facts["max_gap"] < 2000, facts
    disclosed = page.evaluate("window.disclosures")
    assert [d["kind"] for d in disclosed] == ["embeddings"]
    assert disclosed[0]["bytes"] == sum(f.stat().st_size for f in
                                        (export_dir / "embeddings").rglob("*")
                                        if f.is_file() and f.name != "manifest.json")
