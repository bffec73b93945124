"""The index of two source trees side by side in one run: this checkout against another
(say a git worktree of the commit before a change), on the same machine at the same time.

    git worktree add /tmp/rag-base HEAD~1
    python bench/bench_index_ab.py --base /tmp/rag-base/src [--size 100000] [--queries 100]

Each tree runs in its own child process (its ``src`` first on ``sys.path``) and builds its
own index of the same chunks and vectors with its own code (store writes and the sync
after them, timed), then answers the same queries: hybrid (vector + keyword, RRF, k=5),
keyword only, vector only, and the first hybrid query after opening. Queries go in
rounds, the two trees alternating (A B, then B A, ...) so drift in the machine's load
falls on both alike. Vectors, texts and queries are bench_index.py's: synthetic vectors
mixed from real embeddings, standard-library paragraphs, 10-word queries; latency
excludes embedding the query. Uses only the API both trees share (Store,
hybrid_search, vector_search, fts_terms). Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embeddings import cpu_model

HERE = Path(__file__).resolve().parent
THIS_SRC = HERE.parent / "src"
KINDS = ("hybrid", "keyword", "vector")


def child_main(work: Path) -> int:
    """Build this tree's index in ``work``, then answer commands on stdin, one JSON
    line each: ``[kind, first, last]`` -> milliseconds per query; ``["open", i]`` -> the
    first hybrid query after opening; ``["stale", i]`` -> the first hybrid query after
    another connection's write that nothing synced (as during an ingest by another
    process), and the one after it; ``["sizes"]``; ``["quit"]``."""
    sys.path.insert(0, str(HERE))
    from bench_index import FixedQuery, build_store
    from localinfer.rag.chunking import Chunk
    from localinfer.rag.search import fts_terms, hybrid_search, vector_search
    from localinfer.rag.store import Store

    vectors = np.load(work / "vectors.npy")
    queries = np.load(work / "queries.npy")
    texts = json.loads((work / "texts.json").read_text())
    query_texts = json.loads((work / "query_texts.json").read_text())
    path = work / f"index-{os.getpid()}.db"
    store, write_rate = build_store(path, vectors, texts)
    started = time.perf_counter()
    store.sync_vectors()  # what Index.add does after an ingest
    sync_s = time.perf_counter() - started
    store.close()
    fixed = FixedQuery(dict(zip(query_texts, queries, strict=True)))
    store = Store(path, embedder_id=FixedQuery.id, dim=vectors.shape[1])
    hybrid_search(store, fixed, query_texts[0], k=5)  # map both files before timing
    print(json.dumps({"write_rate": write_rate, "sync_s": sync_s,
                      "src": str(Path(sys.modules["localinfer"].__file__ or "").parent)}),
          flush=True)

    def one(kind: str, i: int) -> None:
        if kind == "hybrid":
            hybrid_search(store, fixed, query_texts[i], k=5)
        elif kind == "keyword":
            terms = fts_terms(query_texts[i])
            if terms:
                store.keyword_candidates(terms, 5, None)
        else:
            vector_search(store, queries[i], 5, None)

    for line in sys.stdin:
        command = json.loads(line)
        if command[0] == "quit":
            break
        if command[0] == "sizes":
            files = {"db": path, "vectors": path.with_name(path.name + ".vectors"),
                     "keywords": path.with_name(path.name + ".keywords")}
            answer: Any = {k: f.stat().st_size if f.exists() else 0 for k, f in files.items()}
        elif command[0] == "stale":
            i = command[1]
            writer = Store(path, embedder_id=FixedQuery.id, dim=vectors.shape[1])
            writer.replace_document(
                collection="default", path=f"/bench/late-{i}.txt", kind="text",
                sha256=f"{i:064x}"[::-1], size=0, mtime=0.0, vectors=queries[i:i + 1],
                chunks=[Chunk(query_texts[i], "", 1, 1, None, None)])
            writer.close()
            answer = []
            for _ in range(2):
                started = time.perf_counter()
                hybrid_search(store, fixed, query_texts[i], k=5)
                answer.append((time.perf_counter() - started) * 1000)
        elif command[0] == "open":
            started = time.perf_counter()
            fresh = Store(path, embedder_id=FixedQuery.id, dim=vectors.shape[1])
            hybrid_search(fresh, fixed, query_texts[command[1]], k=5)
            answer = (time.perf_counter() - started) * 1000
            check = getattr(fresh, "_vector_check", None)
            if check is not None:
                check.wait(120)  # not left running into the next measurement
            fresh.close()
        else:
            kind, first, last = command
            answer = []
            for i in range(first, last):
                started = time.perf_counter()
                one(kind, i)
                answer.append((time.perf_counter() - started) * 1000)
        print(json.dumps(answer), flush=True)
    store.close()
    return 0


class Child:
    def __init__(self, name: str, src: Path, work: Path) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", str(work)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.info: dict[str, Any] = {}

    def ready(self) -> None:
        self.info = json.loads(self._line())

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the child process ended")
        return line

    def ask(self, *command: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(list(command)) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        self.ask_quit()
        self.proc.wait(60)

    def ask_quit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write('["quit"]\n')
        self.proc.stdin.flush()


def prepare(work: Path, size: int, n_queries: int, base: int) -> None:
    """The vectors, texts and queries both children read (bench_index.py's recipe)."""
    sys.path.insert(0, str(HERE))
    from _corpus import stdlib_paragraphs
    from bench_index import synthesize
    from localinfer.rag import load_default_embedder
    from localinfer.settings import Settings

    embedder = load_default_embedder(Settings(home=work / "home"))
    texts = stdlib_paragraphs(base + n_queries)
    real = embedder.embed(texts)
    vectors = synthesize(real[:base], size, np.random.default_rng(0))
    np.save(work / "vectors.npy", vectors)
    np.save(work / "queries.npy", real[base:base + n_queries])
    (work / "query_texts.json").write_text(json.dumps(
        [" ".join(t.split()[:10]) for t in texts[base:base + n_queries]]))
    (work / "texts.json").write_text(json.dumps(stdlib_paragraphs(20_000)))


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child_main(Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True,
                        help="the other tree's src folder (the one localinfer is in)")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--opens", type=int, default=5)
    parser.add_argument("--stale", type=int, default=3,
                        help="queries after an unsynced write (last: they change the index)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-index-ab-"))
    children: list[Child] = []
    try:
        prepare(work, args.size, args.queries, 1500)
        load_start = os.getloadavg()[0]
        for name, src in (("base", args.base.resolve()), ("this", THIS_SRC)):
            child = Child(name, src, work)
            child.ready()  # one build at a time: they would compete for the 2 cores
            children.append(child)
        times: dict[tuple[str, str], list[float]] = {}
        opens: dict[str, list[float]] = {c.name: [] for c in children}
        step = max(1, args.queries // args.rounds)
        for r, first in enumerate(range(0, args.queries, step)):
            order = children if r % 2 == 0 else children[::-1]
            last = min(args.queries, first + step)
            for kind in KINDS:
                for child in order:
                    times.setdefault((child.name, kind), []).extend(
                        child.ask(kind, first, last))
        for i in range(args.opens):
            for child in children if i % 2 == 0 else children[::-1]:
                opens[child.name].append(child.ask("open", i))
        sizes = {c.name: c.ask("sizes") for c in children}
        stale: dict[str, list[list[float]]] = {c.name: [] for c in children}
        for i in range(args.stale):
            for child in children if i % 2 == 0 else children[::-1]:
                stale[child.name].append(child.ask("stale", i))
        load_end = os.getloadavg()[0]
    finally:
        for child in children:
            child.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"## Index A/B: {args.size:,} chunks, {args.queries} queries\n")
    print(f"- command: `python bench/bench_index_ab.py --base {args.base} --size {args.size} "
          f"--queries {args.queries} --rounds {args.rounds}`")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}; load average "
          f"{load_start:.1f} after the data was prepared, {load_end:.1f} at the end")
    print(f"- base: {children[0].info['src']}; this: {children[1].info['src']}\n")
    print("| what | base p50 ms | this p50 ms | base / this | base p95 | this p95 |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        a, b = times[("base", kind)], times[("this", kind)]
        print(f"| {kind} query | {p(a, 50):.2f} | {p(b, 50):.2f} | "
              f"{p(a, 50) / p(b, 50):.2f}x | {p(a, 95):.2f} | {p(b, 95):.2f} |")
    a, b = opens["base"], opens["this"]
    print(f"| first hybrid query after opening (median of {args.opens}) | "
          f"{float(np.median(a)):.1f} | {float(np.median(b)):.1f} | "
          f"{float(np.median(a)) / float(np.median(b)):.2f}x | - | - |")
    if args.stale:
        for n, label in ((0, "first"), (1, "second")):
            a = [float(x[n]) for x in stale["base"]]
            b = [float(x[n]) for x in stale["this"]]
            print(f"| {label} hybrid query after another connection's unsynced write "
                  f"(median of {args.stale}) | {float(np.median(a)):.1f} | "
                  f"{float(np.median(b)):.1f} | "
                  f"{float(np.median(a)) / float(np.median(b)):.2f}x | - | - |")
    print()
    print("| what | base | this |")
    print("|---|---:|---:|")
    print(f"| store writes, chunks/s | {children[0].info['write_rate']:,.0f} | "
          f"{children[1].info['write_rate']:,.0f} |")
    print(f"| sync after the writes (vector and keyword files), s | "
          f"{children[0].info['sync_s']:.1f} | {children[1].info['sync_s']:.1f} |")
    for key in ("db", "vectors", "keywords"):
        print(f"| index.db{'' if key == 'db' else '.' + key}, MB | "
              f"{sizes['base'][key] / 1e6:,.1f} | {sizes['this'][key] / 1e6:,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
