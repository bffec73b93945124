"""Index benchmarks: query latency and recall at 10k and 100k chunks, store write rate,
and end-to-end ingest rate (read, chunk, embed, write).

    python bench/bench_index.py [--sizes 10000 100000] [--queries 200]

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
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embeddings import cpu_model, stdlib_texts
from localinfer.rag import Index, load_default_embedder
from localinfer.rag.bitscan import BIT_CANDIDATES
from localinfer.rag.chunking import Chunk
from localinfer.rag.search import hybrid_search, vector_search
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
    return rescored(store.knn_sqlite_vec(query, candidates, None), store, query)


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


def main() -> int:
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
    args = parser.parse_args()

    settings = Settings(home=work / "home")
    embedder = load_default_embedder(settings)
    texts = stdlib_texts(args.base + args.queries)
    real = embedder.embed(texts)
    base, queries = real[:args.base], real[args.base:args.base + args.queries]
    # A search is a few words: the keyword side sees each held-out paragraph's first 10.
    query_texts = [" ".join(t.split()[:10]) for t in texts[args.base:args.base + args.queries]]
    chunk_texts = stdlib_texts(20_000)
    embed_times = []
    for text in query_texts[:50]:
        started = time.perf_counter()
        embedder.embed([text])
        embed_times.append(time.perf_counter() - started)

    rng = np.random.default_rng(0)
    lines: list[str] = []
    writes: list[str] = []
    for size in args.sizes:
        vectors = synthesize(base, size, rng)
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 1  # rowids are 1-based
        store, write_rate = build_store(work / f"index-{size}.db", vectors, chunk_texts)
        writes.append(f"| {size:,} | {write_rate:,.0f} |")
        started = time.perf_counter()
        store.vector_candidates(queries[0], 10, None)
        load_ms = (time.perf_counter() - started) * 1000
        for bits in (300, 1000, 3000, 10000):
            p50, p95, recall = measure(
                functools.partial(_ids, store, bits=bits),
                queries, exact)
            default = " (default)" if bits == BIT_CANDIDATES else ""
            lines.append(f"| {size:,} | in memory: {bits} by bits, 100 by int8, "
                         f"exact float32{default} | {p50:.1f} | {p95:.1f} | {recall:.3f} |")
        for candidates in (100, 1000):  # what sqlite-vec's own KNN costs instead
            p50, p95, recall = measure(
                functools.partial(_rescored_knn, store, candidates),
                queries, exact)
            lines.append(f"| {size:,} | sqlite-vec KNN on bits (k={candidates}), re-scored "
                         f"| {p50:.1f} | {p95:.1f} | {recall:.3f} |")
        fixed = FixedQuery(dict(zip(query_texts, queries, strict=True)))
        times = []
        for text in query_texts:
            started = time.perf_counter()
            hybrid_search(store, fixed, text, k=5)
            times.append(time.perf_counter() - started)
        lines.append(f"| {size:,} | hybrid search (vector + FTS5, RRF), k=5, default "
                     f"settings | {percentile_ms(times, 50):.1f} | "
                     f"{percentile_ms(times, 95):.1f} | - |")
        lines.append(f"| {size:,} | first query after opening (loads the vectors) "
                     f"| {load_ms:.1f} | - | - |")
        store.close()

    docs = work / "docs"
    write_documents(docs, args.ingest_files)
    with Index(settings, path=work / "ingest.db", embedder=embedder) as index:
        started = time.perf_counter()
        report = index.add([docs])
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        index.add([docs])
        readd_s = time.perf_counter() - started

    print("## Index: query latency, recall, ingest\n")
    print(f"- command: `python bench/bench_index.py --sizes "
          f"{' '.join(map(str, args.sizes))} --queries {args.queries}`")
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
    print(f"\nIngest end to end ({args.ingest_files} text files, {report.chunks} chunks: read, "
          f"chunk, embed, write): {ingest_s:.1f} s = {report.chunks / ingest_s:.1f} chunks/s, "
          f"{args.ingest_files / ingest_s:.1f} files/s; re-adding the unchanged folder: "
          f"{readd_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
