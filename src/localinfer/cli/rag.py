"""`embed`, `index`, `search`, `ask`: documents that never leave the machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import LocalInferError, UsageError
from ..files import safe_resolve, undecodable_name
from ..files import shown as printable
from ..settings import Settings
from .common import note, print_json, print_table, settings_from_args
from .progress import ItemsBar


def register(sub: Any) -> None:
    e = sub.add_parser("embed", help="embed texts with the local embedder",
                       description="Embed texts on this machine (all-MiniLM-L6-v2, ONNX). "
                       "With no TEXT, reads one text per line from stdin.")
    e.add_argument("texts", nargs="*", metavar="TEXT")
    e.add_argument("-m", "--model", help="another embedding model, served by a local server "
                   "(e.g. nomic-embed-text on Ollama); never a remote one")
    e.add_argument("--json", action="store_true", help="OpenAI-shaped JSON output")
    e.set_defaults(func=run_embed)

    ix = sub.add_parser("index", help="manage the local document index",
                        description="Index documents (text, Markdown, HTML, PDF, source code) "
                        "into a local SQLite file. Nothing leaves the machine.")
    isub = ix.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    add = isub.add_parser("add", help="index files and folders (unchanged files are skipped)")
    add.add_argument("paths", nargs="+", metavar="PATH")
    _collection(add, default="default")
    add.add_argument("--embed-model", metavar="MODEL",
                     help="embed with a local server's model (e.g. nomic-embed-text) instead "
                     "of the built-in one; only for a new index, which then remembers it")
    _json(add)
    add.set_defaults(func=run_add)
    ls = isub.add_parser("list", help="list indexed documents")
    _collection(ls)
    _json(ls)
    ls.set_defaults(func=run_list)
    rm = isub.add_parser("rm", help="forget files, folders, or (with only --collection) a "
                         "whole collection")
    rm.add_argument("paths", nargs="*", metavar="PATH")
    _collection(rm)
    _json(rm)
    rm.set_defaults(func=run_rm)
    stats = isub.add_parser("stats", help="size and contents of the index")
    _json(stats)
    stats.set_defaults(func=run_stats)
    sync = isub.add_parser("sync", help="re-index changed files, drop deleted ones, add new "
                           "ones under added folders")
    _collection(sync)
    _json(sync)
    sync.set_defaults(func=run_sync)

    s = sub.add_parser("search", help="hybrid (vector + keyword) search of the index")
    s.add_argument("query", metavar="QUERY", nargs="+", help="words are joined")
    _collection(s)
    s.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    _json(s)
    s.set_defaults(func=run_search)

    a = sub.add_parser("ask", help="answer a question from the index, citing sources",
                       description="Retrieve from the index and answer through a local chat "
                       "model, with numbered citations. Always sensitive: never remote.")
    # nargs="+": `ask When is the boiler serviced?` works unquoted, as `ollama run` does.
    a.add_argument("question", metavar="QUESTION", nargs="+", help="words are joined")
    _collection(a)
    a.add_argument("-k", type=int, default=5, help="how many sources to give the model")
    a.add_argument("-m", "--model", help="local chat model to answer with")
    a.add_argument("--max-tokens", type=int, default=512, help="longest answer, in tokens")
    _json(a)
    a.set_defaults(func=run_ask)


def _collection(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("-c", "--collection", default=default,
                   help=f"collection name (default: {default or 'all'})")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(args)


def _index(args: argparse.Namespace) -> Any:
    try:
        from ..rag import Index
    except ImportError as exc:
        raise LocalInferError(f"documents need the 'rag' extra ({exc.name} is missing): "
                              "pip install 'localinfer[rag]'") from exc
    return Index(_settings(args), embed_model=getattr(args, "embed_model", None))


def joined(words: list[str]) -> str:
    """The words of an unquoted QUERY or QUESTION, as one string."""
    return " ".join(words).strip()


def given_paths(paths: list[str]) -> list[Path]:
    """The paths as given; a name that is not valid UTF-8 cannot be stored in the index
    (inside a folder such a file is skipped with its reason): one line, exit 2."""
    for given in paths:
        if undecodable_name(safe_resolve(Path(given))):
            raise UsageError(f"the name {printable(given)} is not valid UTF-8, so the index "
                             "cannot store it; rename it (e.g. to an ASCII name)")
    return [Path(p) for p in paths]


def shown(path: str) -> str:
    """Paths under the working directory are shown relative to it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


# embed -----------------------------------------------------------------------------

def run_embed(args: argparse.Namespace) -> int:
    texts: list[str] = list(args.texts)
    if not texts and not sys.stdin.isatty():
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UsageError("nothing to embed: give TEXT arguments or lines on stdin")
    settings = _settings(args)
    try:
        import localinfer.backends.local_embed  # noqa: F401 - the `rag` extra is installed
    except ImportError as exc:
        raise LocalInferError(f"local embeddings need the 'rag' extra ({exc.name} is "
                              "missing): pip install 'localinfer[rag]'") from exc

    from ..client import Client

    # The router's rule: no model (or the built-in one's name) is the local embedder.
    with Client(settings) as client:
        response = client.embed(texts, model=args.model, sensitive=True)
    if args.json:
        print_json(response.model_dump(mode="json"))
        return 0
    for text, vector in zip(texts, response.vectors, strict=True):
        head = " ".join(f"{x:+.4f}" for x in vector[:4])
        label = text if len(text) <= 40 else text[:37] + "..."
        print(f"{len(vector)} dims  [{head} ...]  {label}")
    note(f"embedded by {response.model} ({response.backend or '?'}, {response.tier or '?'})")
    return 0


# index -----------------------------------------------------------------------------

def _print_report(report: Any, verb: str) -> None:
    for path, reason in report.skipped:
        note(f"skipped {shown(path)}: {reason}")
    parts = [f"{len(report.added)} added", f"{len(report.updated)} updated",
             f"{report.unchanged} unchanged"]
    if report.removed:
        parts.append(f"{len(report.removed)} removed")
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    print(f"{verb}: {', '.join(parts)} ({report.chunks} new chunks)")


def run_add(args: argparse.Namespace) -> int:
    bar = ItemsBar("indexing")
    with _index(args) as index:
        try:
            report = index.add(given_paths(args.paths), collection=args.collection,
                               progress=bar)
        finally:
            bar.close()
    if args.json:
        print_json(report.as_json())
    else:
        _print_report(report, "indexed")
    return 0


def run_sync(args: argparse.Namespace) -> int:
    bar = ItemsBar("syncing")
    with _index(args) as index:
        try:
            report = index.sync(collection=args.collection, progress=bar)
        finally:
            bar.close()
    if args.json:
        print_json(report.as_json())
    else:
        _print_report(report, "synced")
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _index(args) as index:
        docs = index.documents(args.collection)
    if args.json:
        print_json({"documents": [
            {"collection": d.collection, "path": d.path, "kind": d.kind, "chunks": d.chunks,
             "size": d.size, "sha256": d.sha256, "indexed_at": d.indexed_at} for d in docs]})
        return 0
    if not docs:
        print("The index is empty: localinfer index add PATH")
        return 0
    rows = [("COLLECTION", "KIND", "CHUNKS", "PATH")]
    rows += [(d.collection, d.kind, str(d.chunks), shown(d.path)) for d in docs]
    print_table(rows)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    if not args.paths and not args.collection:
        raise UsageError("give paths to remove, or --collection NAME to drop a collection")
    given_paths(args.paths)
    with _index(args) as index:
        removed = index.remove(args.paths, collection=args.collection)
    if args.json:
        print_json({"removed": removed})
    else:
        print(f"removed {len(removed)} document(s)")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..assets.progress import format_bytes

    with _index(args) as index:
        stats = index.stats()
    if args.json:
        print_json(stats)
        return 0
    print(f"Index: {stats['path']} ({format_bytes(stats['bytes'])})")
    print(f"Embedder: {stats['embedder']} ({stats['dimensions']} dimensions)")
    print(f"{stats['documents']} documents, {stats['chunks']} chunks")
    if stats["collections"]:
        rows = [("COLLECTION", "DOCUMENTS", "CHUNKS")]
        rows += [(name, str(c["documents"]), str(c["chunks"]))
                 for name, c in stats["collections"].items()]
        print_table(rows)
    return 0


# search and ask --------------------------------------------------------------------

def run_search(args: argparse.Namespace) -> int:
    with _index(args) as index:
        hits = index.search(joined(args.query), k=args.k, collection=args.collection)
    if args.json:
        print_json({"results": [h.as_json() for h in hits]})
        return 0
    if not hits:
        print("No results.")
        return 0
    for n, hit in enumerate(hits, start=1):
        heading = f"  ({hit.chunk.heading})" if hit.chunk.heading else ""
        print(f"[{n}] {shown(hit.location)}  score {hit.score:.4f}{heading}")
        for line in hit.chunk.text.splitlines()[:6]:
            print(f"    {line}")
        print()
    return 0


def run_ask(args: argparse.Namespace) -> int:
    with _index(args) as index:
        answer = index.ask(joined(args.question), k=args.k, collection=args.collection,
                           model=args.model, max_tokens=args.max_tokens)
    if args.json:
        print_json(answer.as_json())
        return 0
    if answer.extractive:
        print("No checked answer: the model cited nothing found in the sources. "
              "The best passages (extractive):")
        print()
    print(answer.answer)
    print()
    print("Sources:")
    for n, hit in enumerate(answer.sources, start=1):
        mark = "*" if n in answer.cited else " "
        heading = f"  ({hit.chunk.heading})" if hit.chunk.heading else ""
        print(f" {mark}[{n}] {shown(hit.location)}{heading}")
    how = "; some citations placed by matching the sentence's words" if answer.attributed else ""
    sys.stdout.flush()
    note(f"answered locally by {answer.model or '?'} on {answer.backend or '?'} "
         f"({answer.tier or '?'}){how}")
    if answer.note and not answer.extractive:
        note(answer.note)
    return 0
