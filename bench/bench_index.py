"""Index benchmarks: query latency, recall and RSS at 10k, 100k (and 1M) chunks, the first
query after opening (vector file, bulk checked in the background or before use, vs
reading SQLite), keyword search (our BM25 over the postings copy vs MaxScore over FTS5
vs the plain OR query), the bit scan (column-major vs the old row-major layout), store
write rate, and end-to-end ingest against the embedder's own rate on the same texts.
Every "old" path runs in the same process, interleaved or side by side with the new;
the paths the index no longer has live in _index_alternatives.py.

    python bench/bench_index.py [--sizes 10000 100000] [--queries 200]
    python bench/bench_index.py --sizes 1000000 --no-ingest   # the 1M run (~3 GB on disk)

Vectors at scale are synthetic but shaped like real ones: each mixes two real
all-MiniLM-L6-v2 embeddings of standard-library paragraphs plus noise, so they keep the
real embeddings' anisotropy (a shared mean direction, which makes sign bits harder);
queries are embeddings of held-out paragraphs. Recall@10 is against exact cosine
search over all float32 vectors. Query latency excludes embedding the query, which is
measured on its own line. Results go to stdout as markdown.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _index_alternatives as alt
from _corpus import stdlib_paragraphs
from bench_embeddings import cpu_model
from localinfer.rag import Index, load_default_embedder, postings, vectorfile
from localinfer.rag.bitscan import (
    BIT_CANDIDATES,
    VectorCache,
    as_words,
    dot_rows,
    hamming,
    pack_bits,
)
from localinfer.rag.chunking import Chunk, chunk_blocks
from localinfer.rag.index import EMBED_BATCH_CHUNKS
from localinfer.rag.loaders import load
from localinfer.rag.search import fts_terms, hybrid_search, vector_search
from localinfer.rag.store import Store
from localinfer.settings import Settings

WORDS = [
    "river", "mountain", "ledger", "invoice", "harvest", "orbit", "lantern", "copper",
    "meadow", "signal", "archive", "compass", "harbor", "violin", "glacier", "pepper",
    "thunder", "cobalt", "saddle", "beacon", "quarry", "velvet", "almond", "ember", "falcon",
    "granite", "hollow", "island", "jasmine", "kettle", "lumber", "marble", "nectar", "oyster",
    "pebble", "quartz", "raven", "summit", "timber", "umbrella", "valley", "walnut", "yarrow",
]
CHUNKS_PER_DOC = 50


class FixedQuery:
    """An embedder that returns the precomputed vector of each query text, so search
    latency is measured without the cost of embedding the query."""

    id, dim = "all-minilm-l6-v2", 384

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def _ids(store: Any, query: Any, *, bits: int) -> list[int]:
    return [i for i, _ in vector_search(store, query, 10, None, bit_candidates=bits)]


def _rescored_knn(store: Any, candidates: int, query: Any) -> list[int]:
    return rescored(alt.knn_vec0(store.db, query, candidates, None), store, query)


_READ = vectorfile.read  # first_query swaps the module's for read_checked_first


def read_checked_first(path: Path, **kwargs: Any) -> vectorfile.Loaded:
    """The vector file with its bulk checked before use (the previous behaviour): the
    background check, waited for."""
    loaded = _READ(path, **kwargs)
    if loaded.check is not None and loaded.check.wait() is False:
        return vectorfile.Loaded(None, "checksum mismatch (corrupt)")
    return loaded


def synthesize(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    x = base[i] + 0.4 * base[j] + 0.04 * rng.standard_normal((n, base.shape[1]))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def build_store(path: Path, vectors: np.ndarray, texts: list[str]) -> tuple[Store, float]:
    """Chunks of real paragraphs (cycled), so keyword search meets a real vocabulary."""
    store = Store(path, embedder_id=FixedQuery.id, dim=vectors.shape[1])
    started = time.perf_counter()
    for doc, start in enumerate(range(0, len(vectors), CHUNKS_PER_DOC)):
        block = vectors[start:start + CHUNKS_PER_DOC]
        chunks = [Chunk(texts[(start + i) % len(texts)], "", 1, 5, None, None)
                  for i in range(len(block))]
        store.replace_document(collection="default", path=f"/bench/doc-{doc}.txt",
                               kind="text", sha256=f"{doc:064x}", size=0, mtime=0.0,
                               chunks=chunks, vectors=block)
    return store, len(vectors) / (time.perf_counter() - started)


def rss_mb() -> float:
    """Resident set size now (Linux), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def first_query(path: Path, query: np.ndarray, *, lazy: bool = True,
                text: str | None = None, fixed: Any = None) -> tuple[float, str]:
    """Open the index and answer one vector query (or, with ``text``, one hybrid
    query): ms, and where the vectors came from. ``lazy=False``: the vector file's bulk
    is checked before use (the previous behaviour)."""
    read = vectorfile.read
    if not lazy:
        vectorfile.read = read_checked_first  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        store = Store(path, embedder_id=FixedQuery.id, dim=query.shape[0])
        if text is None:
            vector_search(store, query, 10, None)
        else:
            hybrid_search(store, fixed, text, k=5)
        ms = (time.perf_counter() - started) * 1000
    finally:
        vectorfile.read = read  # type: ignore[assignment]
    source = store.vector_source
    if store._vector_check is not None:
        store._vector_check.wait(120)  # not left running into the next measurement
    store.close()
    return ms, source


def hamming_rows(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The previous bit scan: row-major codes, popcounts summed along each row."""
    out = np.empty(len(codes), dtype=np.uint16)
    for start in range(0, len(codes), 1 << 15):
        block = np.bitwise_count(codes[start:start + (1 << 15)] ^ q)
        np.add.reduce(block, axis=1, dtype=np.uint16, out=out[start:start + (1 << 15)])
    return out


def bit_scan_lines(size: int, codes: np.ndarray, queries: np.ndarray) -> str:
    """The bit scan alone, both layouts, interleaved over the same queries."""
    rows_major = np.ascontiguousarray(codes.T)
    new, old = [], []
    for q in queries[:50]:
        qw = as_words(pack_bits(q.reshape(1, -1)))[0]
        started = time.perf_counter()
        hamming(codes, qw)
        new.append(time.perf_counter() - started)
        started = time.perf_counter()
        hamming_rows(rows_major, qw)
        old.append(time.perf_counter() - started)
    a, b = percentile_ms(new, 50), percentile_ms(old, 50)
    return (f"| {size:,} | bit scan alone (Hamming over every row): column-major (new) "
            f"{a:.2f} ms, row-major (old) {b:.2f} ms: **{b / a:.1f}x** | {a:.2f} | - | - |")


def child_rss(args: list[str]) -> dict[str, float]:
    """RSS of a fresh process that opens the index (or vector file) and queries it."""
    out = subprocess.run([sys.executable, __file__, "--rss-child", *args],
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def rss_child_main(argv: list[str]) -> int:
    """``--rss-child KIND PATH QUERIES.npy [TEXTS.json]``: baseline RSS after imports,
    then after opening and 50 queries (the mapped pages it touched count)."""
    kind, path, queries_path = argv[:3]
    queries = np.load(queries_path)
    base = rss_mb()
    if kind == "vectors":
        size = int(argv[3])
        loaded = read_checked_first(Path(path), dim=queries.shape[1], generation=1,
                                    count=size)
        assert loaded.cache is not None, loaded.why
        for q in queries[:50]:
            loaded.cache.nearest(q, 100)
    else:
        texts = json.loads(Path(argv[3]).read_text())
        store = Store(Path(path), embedder_id=FixedQuery.id, dim=queries.shape[1])
        fixed = FixedQuery(dict(zip(texts, queries, strict=True)))
        for text in texts[:50]:
            hybrid_search(store, fixed, text, k=5)
    print(json.dumps({"base": base, "open": rss_mb()}))
    return 0


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(np.array(times) * 1000, q))


def measure(run: Callable[[np.ndarray], list[int]], queries: np.ndarray,
            exact: np.ndarray) -> tuple[float, float, float]:
    times, recalls = [], []
    for q, truth in zip(queries, exact, strict=True):
        started = time.perf_counter()
        got = run(q)
        times.append(time.perf_counter() - started)
        recalls.append(len(set(got) & set(truth)) / len(truth))
    return percentile_ms(times, 50), percentile_ms(times, 95), float(np.mean(recalls))


def rescored(candidates: list[int], store: Store, q: np.ndarray) -> list[int]:
    ids, matrix = store.embeddings(candidates)
    order = np.argsort(-(matrix @ q))[:10]
    return [ids[i] for i in order]


def write_documents(folder: Path, count: int) -> None:
    rng = random.Random(5)
    folder.mkdir(parents=True)
    for n in range(count):
        paras = [" ".join(rng.choices(WORDS, k=rng.randint(40, 80))) + "." for _ in range(3)]
        (folder / f"note-{n:04d}.txt").write_text("\n\n".join(paras) + "\n")


def vectors_only(work: Path, size: int, vectors: np.ndarray, queries: np.ndarray,
                 exact: np.ndarray, growth: list[str]) -> list[str]:
    """The vector side at a size whose SQLite store would take too long to build here:
    the same VectorCache and search code, floats for the exact pass read from memory
    instead of SQLite (~1 ms for 100 rows at 100k), the vector file written and mapped."""
    lines: list[str] = []
    ids = np.arange(1, size + 1, dtype=np.int64)
    cache = VectorCache.from_rows(
        ((int(i), "default", vectors[i - 1].tobytes()) for i in ids), vectors.shape[1])
    path = work / f"vectors-{size}.vectors"
    started = time.perf_counter()
    vectorfile.write(path, cache, dim=vectors.shape[1], generation=1)
    write_s = time.perf_counter() - started
    del cache
    open_ms: dict[bool, list[float]] = {}
    for lazy in (True, False, True, False):  # side by side: bulk checked later / first
        started = time.perf_counter()
        read = vectorfile.read if lazy else read_checked_first
        loaded = read(path, dim=vectors.shape[1], generation=1, count=size)
        assert loaded.cache is not None, loaded.why
        loaded.cache.nearest(queries[0], 100)
        open_ms.setdefault(lazy, []).append((time.perf_counter() - started) * 1000)
        if loaded.check is not None:
            loaded.check.wait(120)
    mapped = loaded.cache
    assert mapped is not None

    def search(q: np.ndarray, bits: int) -> list[int]:
        got = mapped.nearest(q, 100, bit_candidates=bits)
        sims = dot_rows(vectors[np.array(got) - 1], q)
        return [got[i] for i in np.argsort(-sims)[:10]]

    default_bits = max(BIT_CANDIDATES, size // 100)
    vector_p50, vector_recall = float("nan"), float("nan")
    for bits in (3000, 10000, 30000):
        p50, p95, recall = measure(functools.partial(search, bits=bits), queries, exact)
        if bits == default_bits:
            vector_p50, vector_recall = p50, recall
        default = " (default)" if bits == default_bits else ""
        lines.append(f"| {size:,} | in memory, vectors only: {max(bits, size // 100)} by "
                     f"bits, 100 by int8, exact float32{default} | {p50:.1f} | {p95:.1f} | "
                     f"{recall:.3f} |")
    lines.append(bit_scan_lines(size, mapped.codes, queries))
    np.save(work / "queries.npy", queries)
    rss = child_rss(["vectors", str(path), str(work / "queries.npy"), str(size)])
    lazy_ms, eager_ms = min(open_ms[True]), min(open_ms[False])
    lines.append(f"| {size:,} | vector file: written in {write_s:.1f} s; opened and first "
                 f"query, bulk checked in the background (best of 2; whole file checked "
                 f"first: {eager_ms:.0f} ms) | {lazy_ms:.1f} | - | - |")
    growth.append(f"| {size:,} | {vector_p50:.1f} ({vector_recall:.3f}) | not measured (no "
                  f"SQLite store built) | - | {lazy_ms:.0f} (vector file; SQLite not "
                  f"included) | {rss['open'] - rss['base']:,.0f} (process "
                  f"{rss['open']:,.0f}) | {path.stat().st_size / 1e6:,.0f} | - |")
    return lines


def main() -> int:
    if sys.argv[1:2] == ["--rss-child"]:
        return rss_child_main(sys.argv[2:])
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--base", type=int, default=1500,
                        help="real embeddings the synthetic vectors are mixed from")
    parser.add_argument("--ingest-files", type=int, default=150)
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest part")
    parser.add_argument("--vectors-only", action="store_true",
                        help="no SQLite store: the in-memory vector search and the vector "
                        "file alone (exact re-scoring from memory), for 1M chunks")
    args = parser.parse_args()

    settings = Settings(home=work / "home")
    embedder = load_default_embedder(settings)
    texts = stdlib_paragraphs(args.base + args.queries)
    real = embedder.embed(texts)
    base, queries = real[:args.base], real[args.base:args.base + args.queries]
    # A search is a few words: the keyword side sees each held-out paragraph's first 10.
    query_texts = [" ".join(t.split()[:10]) for t in texts[args.base:args.base + args.queries]]
    chunk_texts = stdlib_paragraphs(20_000)
    embed_times = []
    for text in query_texts[:50]:
        started = time.perf_counter()
        embedder.embed([text])
        embed_times.append(time.perf_counter() - started)

    rng = np.random.default_rng(0)
    lines: list[str] = []
    writes: list[str] = []
    growth: list[str] = []
    for size in args.sizes:
        vectors = synthesize(base, size, rng)
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 1  # rowids are 1-based
        if args.vectors_only:
            lines.extend(vectors_only(work, size, vectors, queries, exact, growth))
            del vectors, exact
            continue
        store, write_rate = build_store(work / f"index-{size}.db", vectors, chunk_texts)
        writes.append(f"| {size:,} | {write_rate:,.0f} |")
        store.sync_vectors()  # what Index.add does after an ingest
        store.close()
        path = work / f"index-{size}.db"
        postings.path_for(path).unlink()
        store = Store(path, embedder_id=FixedQuery.id, dim=vectors.shape[1])
        started = time.perf_counter()
        store.sync_keywords()
        keyword_build_s = time.perf_counter() - started
        store.close()
        fixed = FixedQuery(dict(zip(query_texts, queries, strict=True)))
        # Side by side, 3 rounds: the vector file mapped with its bulk checked in the
        # background (new) or before use (old); the first hybrid query; SQLite (no file).
        lazy_ms, eager_ms, hybrid_first = [], [], []
        for r in range(3):
            lazy_ms.append(first_query(path, queries[r])[0])
            eager_ms.append(first_query(path, queries[r], lazy=False)[0])
            hybrid_first.append(first_query(path, queries[r], text=query_texts[r],
                                            fixed=fixed)[0])
        file_ms, eager, hybrid_open = (float(np.median(x)) for x in
                                       (lazy_ms, eager_ms, hybrid_first))
        vectorfile.path_for(path).unlink()
        sqlite_ms, sqlite_source = first_query(path, queries[0])
        file_again_ms, _ = first_query(path, queries[1])  # the file was rewritten
        store = Store(path, embedder_id=FixedQuery.id, dim=vectors.shape[1])
        default_bits = max(BIT_CANDIDATES, size // 100)
        sweep = (3000, 10000, 30000) if size >= 500_000 else (300, 1000, 3000, 10000)
        # Settings raised to the same 1% of the rows measure the same thing: once each.
        sweep = tuple(dict.fromkeys(max(b, size // 100) for b in sweep))
        for bits in sweep:
            p50, p95, recall = measure(
                functools.partial(_ids, store, bits=bits),
                queries, exact)
            used = max(bits, size // 100)
            default = " (default)" if bits == default_bits else ""
            if bits == default_bits:
                vector_p50, vector_recall = p50, recall
            lines.append(f"| {size:,} | in memory: {used} by bits, 100 by int8, "
                         f"exact float32{default} | {p50:.1f} | {p95:.1f} | {recall:.3f} |")
        lines.append(bit_scan_lines(size, store._vectors().codes, queries))
        if size <= 100_000:  # sqlite-vec's own KNN, over a vec0 table built for it
            alt.build_vec0(store.db, vectors.shape[1])
            for candidates in (100, 1000):
                p50, p95, recall = measure(
                    functools.partial(_rescored_knn, store, candidates),
                    queries, exact)
                lines.append(f"| {size:,} | sqlite-vec KNN on bits (k={candidates}), "
                             f"re-scored (bench copy) | {p50:.1f} | {p95:.1f} | "
                             f"{recall:.3f} |")
            alt.drop_vec0(store.db)
        # Keyword side, interleaved: our BM25 over the postings copy (the index's one
        # path), MaxScore over FTS5 and FTS5's plain OR query (bench copies).
        maxscore = alt.MaxScore(store.db)
        terms = [fts_terms(t) for t in query_texts]
        kw_new, kw_max, kw_old, same, same_scores, fts_ranked = [], [], [], 0, 0, 0
        for t in terms:
            started = time.perf_counter()
            got = store.keyword_candidates(t, 5, None) if t else []
            kw_new.append(time.perf_counter() - started)
            fts_ranked += store.keyword_source.startswith("unavailable")
            started = time.perf_counter()
            maxscore.top(t, 5, None) if t else []
            kw_max.append(time.perf_counter() - started)
            started = time.perf_counter()
            old = alt.plain(store.db, t, 5, None) if t else []
            kw_old.append(time.perf_counter() - started)
            same += got == old
            scores = dict(alt.ranked(store.db, " OR ".join(t), 1_000_000, None)) if t else {}
            same_scores += [round(scores[i], 9) for i in got] == [round(scores[i], 9)
                                                                   for i in old]
        # Hybrid, interleaved: new default against the previous keyword side (MaxScore
        # over FTS5) with the same vector side.
        times, times_old, hybrid_same = [], [], 0
        for text in query_texts:
            started = time.perf_counter()
            new_hits = hybrid_search(store, fixed, text, k=5)
            times.append(time.perf_counter() - started)
            store.keyword_candidates, own = (  # type: ignore[method-assign]
                maxscore.top, store.keyword_candidates)
            try:
                started = time.perf_counter()
                old_hits = hybrid_search(store, fixed, text, k=5)
                times_old.append(time.perf_counter() - started)
            finally:
                store.keyword_candidates = own  # type: ignore[method-assign]
            hybrid_same += [h.chunk.id for h in new_hits] == [h.chunk.id for h in old_hits]
        store.close()
        (work / "texts.json").write_text(json.dumps(query_texts))
        np.save(work / "queries.npy", queries)
        rss = child_rss(["index", str(path), str(work / "queries.npy"),
                         str(work / "texts.json")])
        kw_p50, hy_p50, hy_old = (percentile_ms(x, 50) for x in (kw_new, times, times_old))
        lines.append(f"| {size:,} | keyword only: FTS5 OR query, bm25 over every match "
                     f"(bench copy) | {percentile_ms(kw_old, 50):.1f} | "
                     f"{percentile_ms(kw_old, 95):.1f} | - |")
        lines.append(f"| {size:,} | keyword only: MaxScore over FTS5 (bench copy) | "
                     f"{percentile_ms(kw_max, 50):.1f} | "
                     f"{percentile_ms(kw_max, 95):.1f} | - |")
        lines.append(f"| {size:,} | keyword only: our BM25 over the postings copy "
                     f"(default; top 5 identical to the OR query's in {same}/{len(terms)}, "
                     f"same scores in {same_scores}/{len(terms)}; FTS5 alone {fts_ranked}; "
                     f"{percentile_ms(kw_max, 50) / kw_p50:.1f}x MaxScore) | {kw_p50:.1f} | "
                     f"{percentile_ms(kw_new, 95):.1f} | - |")
        lines.append(f"| {size:,} | hybrid (vector + keyword, RRF), k=5, keyword side "
                     f"MaxScore over FTS5 (bench copy) | {hy_old:.1f} | "
                     f"{percentile_ms(times_old, 95):.1f} | - |")
        lines.append(f"| {size:,} | hybrid (vector + keyword, RRF), k=5, default (same top "
                     f"5 as the previous in {hybrid_same}/{len(query_texts)}; "
                     f"{hy_old / hy_p50:.1f}x) | {hy_p50:.1f} | "
                     f"{percentile_ms(times, 95):.1f} | - |")
        lines.append(f"| {size:,} | first vector query after opening: vector file mapped, "
                     f"bulk checked in the background (default; median of 3) | "
                     f"{file_ms:.1f} | - | - |")
        lines.append(f"| {size:,} | first vector query after opening: vector file mapped, "
                     f"whole file checked first (previous; median of 3; "
                     f"{eager / file_ms:.1f}x) | {eager:.1f} | - | - |")
        lines.append(f"| {size:,} | first hybrid query after opening (default; median "
                     f"of 3) | {hybrid_open:.1f} | - | - |")
        lines.append(f"| {size:,} | first query after opening: no vector file, read from "
                     f"SQLite ({sqlite_source}; the file again after that rebuild: "
                     f"{file_again_ms:.0f} ms) | {sqlite_ms:.1f} | - | - |")
        lines.append(f"| {size:,} | keyword file (postings copy) built from FTS5 in "
                     f"{keyword_build_s:.1f} s | - | - | - |")
        growth.append(f"| {size:,} | {vector_p50:.1f} ({vector_recall:.3f}) | {kw_p50:.1f} | "
                      f"{hy_p50:.1f} | {file_ms:.0f} | {rss['open'] - rss['base']:,.0f} "
                      f"(process {rss['open']:,.0f}) | "
                      f"{vectorfile.path_for(path).stat().st_size / 1e6:,.0f} | "
                      f"{postings.path_for(path).stat().st_size / 1e6:,.0f} |")
        del vectors, exact

    ingest_line = ""
    if not args.no_ingest:
        docs = work / "docs"
        write_documents(docs, args.ingest_files)
        # The embedder's own rate on exactly the texts ingest embeds, before and after it.
        texts = [c.embed_text for f in sorted(docs.iterdir())
                 for c in chunk_blocks(load(f, f.read_bytes())[1])]
        embed_rates = []
        for _ in range(2):
            started = time.perf_counter()
            for at in range(0, len(texts), EMBED_BATCH_CHUNKS):
                embedder.embed(texts[at:at + EMBED_BATCH_CHUNKS])
            embed_rates.append(len(texts) / (time.perf_counter() - started))
            if len(embed_rates) == 1:
                with Index(settings, path=work / "ingest.db", embedder=embedder) as index:
                    started = time.perf_counter()
                    report = index.add([docs])
                    ingest_s = time.perf_counter() - started
                    started = time.perf_counter()
                    index.add([docs])
                    readd_s = time.perf_counter() - started
        embed_rate = float(np.mean(embed_rates))
        ingest_rate = report.chunks / ingest_s
        ingest_line = (
            f"\nIngest end to end ({args.ingest_files} text files, {report.chunks} chunks: "
            f"read, chunk, embed, write): {ingest_s:.1f} s = {ingest_rate:.1f} chunks/s, "
            f"{args.ingest_files / ingest_s:.1f} files/s; the embedder alone on the same "
            f"{len(texts)} texts (batches of {EMBED_BATCH_CHUNKS}, runs before and after): "
            f"{' and '.join(f'{r:.1f}' for r in embed_rates)} texts/s; ingest / embedder = "
            f"**{ingest_rate / embed_rate:.2f}**; re-adding the unchanged folder: "
            f"{readd_s:.2f} s")

    print("## Index: query latency, recall, ingest\n")
    print(f"- command: `python bench/bench_index.py --sizes "
          f"{' '.join(map(str, args.sizes))} --queries {args.queries}"
          f"{' --no-ingest' if args.no_ingest else ''}"
          f"{' --vectors-only' if args.vectors_only else ''}`")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}, embedder "
          f"{embedder.precision}; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"- {args.queries} queries; vectors mixed from {args.base} real embeddings "
          f"(see the script's docstring); chunk texts: {len(chunk_texts):,} distinct "
          "standard-library paragraphs, cycled; keyword queries: 10 words; latency "
          "excludes embedding the query\n")
    print("| chunks | vector search | p50 ms | p95 ms | recall@10 vs exact |")
    print("|---:|---|---:|---:|---:|")
    print("\n".join(lines))
    print(f"\nEmbedding one query ({embedder.precision}): p50 "
          f"{percentile_ms(embed_times, 50):.1f} ms\n")
    print("| chunks | store writes (chunks/s, one transaction per 50-chunk document) |")
    print("|---:|---:|")
    print("\n".join(writes))
    print(ingest_line)
    print("\n| chunks | vector p50 ms (recall@10) | keyword p50 ms | hybrid p50 ms | "
          "first vector query ms | RSS added by the open index, MB | vector file MB | "
          "keyword file MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(growth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
