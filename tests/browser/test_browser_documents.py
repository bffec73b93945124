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
from tests.browser.harness import NewPage, Recorder, static_site
from tests.gateway_harness import RunApp
from tests.support import rag as support
from tests.support.rag import QUESTIONS

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

embedder = support.embedder
fp32_embedder = support.fp32_embedder
rag_home = support.rag_home

CORPUS = support.CORPUS
# What the page can read: everything in the corpus but the PDF (no PDF parser in the page).
PAGE_FILES = sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".pdf")
PAGE_QUESTIONS = [q for q in QUESTIONS if q[1] in PAGE_FILES]

CONNECT = """async () => {
  const m = await import(new URL('localinfer.js', location.href).href);
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


def python_chunks(name: str | Path) -> list[dict[str, Any]]:
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


def corpus_inputs() -> list[dict[str, str]]:
    return [{"name": name, "text": (CORPUS / name).read_text(encoding="utf-8")}
            for name in PAGE_FILES]


# -- the chunker port: the same chunks, the same line ranges, as Python ----------------------

# Beyond the corpus: the packer's edge cases (over-long lines cut at sentences, spaces or
# hard; setext headings; fences with blank lines; heading-only sections; entities in HTML).
LONG = " ".join(f"Sentence number {i} talks about the harvest; it ends here." for i in range(40))
EXTRA = {
    "long.txt": f"{LONG}\n\n{'x' * 2000}\n\n{'word ' * 400}\nlast line\n",
    "setext.md": ("Title\n=====\n\nIntro para.\n\nPart\n----\n\n```\ncode a\n\ncode b\n"
                  "```\n\n# Only a heading\n\n## Another\n\n" + "Para line.\n" * 120),
    "page.html": ("<html><head><title>T &amp; C</title><style>p {}</style></head>\n<body>\n"
                  "<h1>Fish &amp; chips</h1>\n<p>Cod is\n   fried in <i>beef</i> dripping.</p>"
                  "<ul><li>one</li><li>two &lt;b&gt;</li></ul>\n<script>var x = 'Cod';</script>"
                  "<div>Cod again\n\n\nover lines</div><p>" + LONG + "</p></body></html>\n"),
}


def test_page_chunker_matches_python_on_the_corpus(
        run_app: RunApp, export_dir: Path, new_page: NewPage, tmp_path: Path) -> None:
    site = run_app(static_site(export_dir))
    page = new_page()
    page.goto(f"{site}/?gateway=none&servers=none")
    got: dict[str, list[dict[str, Any]]] = page.evaluate("""async (docs) => {
      const { loadDocument } = await import('/lib/documents/loaders.js');
      const { chunkBlocks } = await import('/lib/documents/chunking.js');
      const out = {};
      for (const d of docs) out[d.name] = chunkBlocks(loadDocument(d.name, d.text).blocks);
      return out;
    }""", corpus_inputs() + [{"name": k, "text": v} for k, v in EXTRA.items()])
    for name in PAGE_FILES:
        assert got[name] == python_chunks(name), name
    for name, text in EXTRA.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert got[name] == python_chunks(path), name


# -- 2. the corpus indexed in the page, no gateway: same recall as Python; survives reload ---

def python_recall(tmp_path: Path, rag_home: Path, embedder: OnnxEmbedder, k: int) -> float:
    from localinfer.rag import Index
    from localinfer.settings import Settings

    folder = tmp_path / "page-corpus"
    folder.mkdir()
    for name in PAGE_FILES:
        (folder / name).write_bytes((CORPUS / name).read_bytes())
    with Index(Settings(home=rag_home, index_path=tmp_path / "py.db"), embedder=embedder) as ix:
        ix.add([folder])
        found = sum(any(h.chunk.path.endswith("/" + name) and phrase in h.chunk.text
                        for h in ix.search(q, k=k)) for q, name, phrase in PAGE_QUESTIONS)
    return found / len(PAGE_QUESTIONS)


RECALL = """async ([questions, k]) => {
  let found = 0;
  for (const [q, name, phrase] of questions) {
    const hits = await li.documents.search(q, { k });
    if (hits.some((h) => h.name === name && h.text.includes(phrase))) found += 1;
  }
  return found / questions.length;
}"""


def test_corpus_in_the_page_recalls_like_python_and_survives_a_reload(
        run_app: RunApp, export_dir: Path, new_page: NewPage, tmp_path: Path, rag_home: Path,
        embedder: OnnxEmbedder) -> None:
    recorder = Recorder()
    site = run_app(recorder.wrap(static_site(export_dir)))
    page = open_page(new_page, site)
    report = page.evaluate("(docs) => li.documents.add(docs, { collection: 'corpus' })",
                           corpus_inputs())
    assert sorted(report["added"]) == PAGE_FILES and report["skipped"] == []
    assert report["embedded"] == report["chunks"] > 0
    page_recall = page.evaluate(RECALL, [PAGE_QUESTIONS, 3])
    py_recall = python_recall(tmp_path, rag_home, embedder, 3)
    print(f"recall@3 over {len(PAGE_QUESTIONS)} questions: page {page_recall:.3f}, "
          f"python {py_recall:.3f}")
    assert page_recall == py_recall

    mark = recorder.mark()
    page.reload()
    page.evaluate(CONNECT)
    listed = page.evaluate("li.documents.list()")
    assert sorted(d["name"] for d in listed["documents"]) == PAGE_FILES
    assert sum(d["chunks"] for d in listed["documents"]) == report["chunks"]
    again = page.evaluate("(docs) => li.documents.add(docs, { collection: 'corpus' })",
                          corpus_inputs())
    assert sorted(again["unchanged"]) == PAGE_FILES
    assert again["embedded"] == 0 and again["added"] == again["updated"] == []
    assert page.evaluate(RECALL, [PAGE_QUESTIONS, 3]) == page_recall
    # The model came from the verified cache: no model file was fetched again.
    refetched = [s.path for s in recorder.since(mark) if s.path.startswith("/embeddings/all")]
    assert refetched == [], refetched


# -- 3. ask with no server: verified citations or the labelled extractive answer, own origin --

def test_ask_with_no_server_cites_verified_passages_and_contacts_only_its_origin(
        run_app: RunApp, export_dir: Path, new_page: NewPage) -> None:
    recorder = Recorder()
    site = run_app(recorder.wrap(static_site(export_dir)))
    page = new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{site}/?gateway=none&servers=none")
    # The embedding model may load; the chat model download is declined: no model answers.
    page.evaluate("""async () => {
      const m = await import(new URL('localinfer.js', location.href).href);
      window.li = await m.LocalInfer.connect({ gateway: null, servers: [], threads: 1,
        remote: { baseUrl: 'http://127.0.0.1:9/v1', name: 'never' },
        onConsent: () => true, onDisclose: (d) => d.kind === 'embeddings' });
    }""")
    page.evaluate("(docs) => li.documents.add(docs)", corpus_inputs())
    answer = page.evaluate("li.documents.ask('How often is the bread culture given flour?')")
    assert answer["mode"] == "extractive" and answer["note"].startswith("extractive answer")
    assert answer["tier"] is None and answer["citations"]
    for c in answer["citations"]:
        source = answer["sources"][c["n"] - 1]
        assert c["verified"] and c["quote"] in source["text"]
        assert source["text"][c["start"]:c["start"] + len(c["quote"])] == c["quote"]
        assert f"[{c['n']}]" in answer["answer"]
    assert "twelve" in answer["answer"]  # the starter is fed every twelve hours
    origins = page.evaluate("li.privacy.origins()")
    assert [o["origin"] for o in origins] == [site]
    assert {r.split("/", 3)[2] for r in requested} == {site.removeprefix("http://")}, requested


# -- 4. a hostile HTML document never runs anything -------------------------------------------

HOSTILE = """<!doctype html><html><head><title>Invoice</title>
<script>window.pwned = 'head-script'</script>
<meta http-equiv="refresh" content="0; url=http://127.0.0.1:9/refresh">
</head><body onload="window.pwned = 'onload'">
<h1>Payment terms</h1>
<p>Invoices are paid within <b>thirty days</b>.<img src="http://127.0.0.1:9/pixel.png"
  onerror="window.pwned = 'onerror'"></p>
<script>window.pwned = 'body-script'</script>
<svg onload="window.pwned = 'svg'"><text>hidden svg text</text></svg>
<p><a href="javascript:window.pwned='link'">a link</a> &lt;script&gt;not code&lt;/script&gt;</p>
<iframe srcdoc="<script>parent.pwned='iframe'</script>"></iframe>
</body></html>"""


def test_a_hostile_html_document_never_executes_anything(
        run_app: RunApp, export_dir: Path, new_page: NewPage) -> None:
    site = run_app(static_site(export_dir))
    page = open_page(new_page, site)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    report = page.evaluate("(text) => li.documents.add({ name: 'invoice.html', text })", HOSTILE)
    assert report["added"] == ["invoice.html"]
    hits = page.evaluate("li.documents.search('when are invoices paid?', { k: 3 })")
    text = "\n".join(h["text"] for h in hits)
    assert "thirty days" in text and "<script>not code</script>" in text
    assert "pwned" not in text and "hidden svg text" not in text
    page.evaluate("li.documents.ask('when are invoices paid?')")
    # Wait for any event a script or handler could have caused: a later message round trip.
    page.wait_for_timeout(1000)
    assert page.evaluate("window.pwned") is None
    assert not [u for u in requested if ":9/" in u], requested


# -- the gateway's embedder when the page has one: same vectors as Python, no worker -------

def test_with_the_gateway_embeddings_come_from_python_and_no_worker_starts(
        run_app: RunApp, tmp_path: Path, new_page: NewPage, embedder: OnnxEmbedder) -> None:
    from localinfer.backends.local_embed import LocalEmbeddingBackend
    from tests.fake_backend import FakeBackend
    from tests.gateway_harness import gateway_app, gateway_settings

    home = tmp_path / "home"
    chat = FakeBackend("fake-local", tier="local")
    embed = LocalEmbeddingBackend(gateway_settings(home), embedder=embedder)
    recorder = Recorder()
    gateway = run_app(recorder.wrap(gateway_app(home, [chat, embed])))
    page = new_page()
    page.goto(f"{gateway}/ui/")
    page.evaluate(CONNECT)
    texts = corpus_texts(12)
    vectors, facts = page_embed(page, texts)
    assert facts["tier"] == "local" and not facts["worker"], facts
    assert float((vectors * embedder.embed(texts)).sum(axis=1).min()) > 0.9999
    report = page.evaluate("(docs) => li.documents.add(docs)", corpus_inputs()[:2])
    assert report["embedded"] == report["chunks"] > 0
    assert page.evaluate("li.embedder.worker") is None
    assert recorder.bytes_under("/ui/embeddings/all-minilm-l6-v2/") == 0


# -- the demo's Documents view, as a new user meets it (and its screenshot) ------------------

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "browser-documents.png"


def test_the_documents_view_indexes_dropped_files_and_highlights_cited_passages(
        run_app: RunApp, export_dir: Path, new_page: NewPage) -> None:
    recorder = Recorder()
    site = run_app(recorder.wrap(static_site(export_dir)))
    page = new_page()
    page.goto(f"{site}/?gateway=none&servers=none&view=documents")
    page.wait_for_selector("body[data-state=idle]")
    page.wait_for_selector("#docs[data-state=idle]")
    files = [{"name": n, "mimeType": "text/plain", "buffer": (CORPUS / n).read_bytes()}
             for n in PAGE_FILES]
    files.append({"name": "invoice.html", "mimeType": "text/html", "buffer": HOSTILE.encode()})
    page.set_input_files("#doc-files", files)
    page.wait_for_selector("#disclose[open]")
    assert page.get_attribute("#disclose-facts", "data-kind") == "embeddings"
    page.click("#disclose-yes")
    page.wait_for_function(f"document.querySelector('#docs').dataset.documents === "
                           f"'{len(files)}' && document.querySelector('#docs').dataset.state"
                           " === 'idle'")
    assert "Added 6" in page.inner_text("#doc-status")
    page.fill("#doc-q", "How often is the bread culture given flour?")
    page.click("#doc-send")
    # The chat model's download is offered (no server): declined, the answer is extractive.
    page.wait_for_selector("#disclose[open]")
    assert page.get_attribute("#disclose-facts", "data-kind") == "chat"
    page.click("#disclose-no")
    page.wait_for_selector("#doc-answer[data-done='1']")
    assert page.get_attribute("#doc-answer", "data-mode") == "extractive"
    assert "extractive answer" in page.inner_text("#doc-answer .label")
    marks = page.eval_on_selector_all("#doc-answer .source mark",
                                      "ms => ms.map(m => m.textContent)")
    assert marks and any("twelve" in m for m in marks), marks
    answer = page.evaluate("localinferApp.docs.answers[0]")
    for c in answer["citations"]:
        assert c["quote"] in answer["sources"][c["n"] - 1]["text"]
    page.click("#privacy-refresh")
    page.wait_for_selector(f"#privacy-rows tr[data-origin='{site}']")
    assert page.eval_on_selector_all("#privacy-rows tr", "rs => rs.map(r => r.dataset.origin)"
                                     ) == [site]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # The hostile document, shown as text in the view, ran nothing.
    page.fill("#doc-q", "When are invoices paid?")
    page.click("#doc-send")
    page.wait_for_selector("#doc-answer[data-done='2']")
    assert "<script>not code</script>" in page.inner_text("#doc-answer")
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('#doc-answer script, #doc-answer img,"
                         " #doc-answer iframe, #doc-answer svg').length") == 0
    assert not [s.path for s in recorder.served if s.path in ("/pixel.png", "/refresh")]


# -- list / remove / clear, changed content, unsupported files --------------------------------

def test_list_remove_clear_and_changed_or_unsupported_documents(
        run_app: RunApp, export_dir: Path, new_page: NewPage) -> None:
    site = run_app(static_site(export_dir))
    page = open_page(new_page, site)
    first = page.evaluate("""() => li.documents.add([
      { name: 'a.md', text: '# Bees\\n\\nThe hives are inspected every nine days.\\n' },
      { name: 'b.txt', text: 'The gate code changes monthly.\\n' },
      { name: 'scan.pdf', text: '%PDF-1.4 ...' }], { collection: 'home' })""")
    assert first["added"] == ["a.md", "b.txt"]
    assert [s["name"] for s in first["skipped"]] == ["scan.pdf"]
    assert "PDF is not supported" in first["skipped"][0]["reason"]
    changed = page.evaluate("""() => li.documents.add(
      { name: 'b.txt', text: 'The gate code changes weekly.\\n' }, { collection: 'home' })""")
    assert changed["updated"] == ["b.txt"] and changed["embedded"] == 1
    hits = page.evaluate("li.documents.search('gate code', { collection: 'home', k: 5 })")
    assert [h["text"] for h in hits if h["name"] == "b.txt"] == ["The gate code changes weekly."]
    assert page.evaluate("li.documents.remove(['a.md'], { collection: 'home' })") == ["a.md"]
    listed = page.evaluate("li.documents.list()")
    assert [d["name"] for d in listed["documents"]] == ["b.txt"]
    assert [c["name"] for c in listed["collections"]] == ["home"]
    assert page.evaluate("li.documents.remove(null, { collection: 'home' })") == ["b.txt"]
    assert page.evaluate("li.documents.list()") == {"documents": [], "collections": []}
    page.evaluate("li.documents.add('a bare string about tomatoes')")
    page.evaluate("li.documents.clear()")
    assert page.evaluate("li.documents.search('tomatoes')") == []


# -- ask through the in-browser chat engine (the best tier with no server) --------------------

def test_ask_through_the_in_browser_engine_verifies_or_falls_back(
        run_app: RunApp, export_dir: Path, new_page: NewPage) -> None:
    site = run_app(static_site(export_dir))
    page = open_page(new_page, site)
    page.evaluate("(docs) => li.documents.add(docs)", corpus_inputs())
    answer = page.evaluate("li.documents.ask('How often is the bread culture given flour?')")
    print(f"mode {answer['mode']}, tier {answer['tier']}: {answer['answer'][:200]!r}")
    if answer["mode"] == "model":
        # The bundled SmolLM2-135M wrote it, in the page; at least one citation checks out.
        assert answer["tier"] == "browser" and answer["backend"].startswith("wllama:")
        assert any(c["verified"] for c in answer["citations"])
    else:
        # It answered, but no citation could be verified: said so, and quoted instead.
        assert "could be verified" in answer["note"] and "wllama:" in answer["note"]
    for c in answer["citations"]:
        assert c["quote"] in answer["sources"][c["n"] - 1]["text"]
    assert [o["origin"] for o in page.evaluate("li.privacy.origins()")] == [site]
