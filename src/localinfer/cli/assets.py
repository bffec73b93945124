"""`localinfer pull` and `localinfer cache`: fetch models knowingly, keep them verified."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..assets import ModelCache, disclose, load_catalog, pull
from ..assets.plan import make_plan
from ..assets.progress import format_bytes, format_duration
from ..errors import UsageError
from .common import confirm, note, print_json, print_table, settings_from_args
from .progress import ProgressBar


def register(sub: Any) -> None:
    p = sub.add_parser(
        "pull", help="download a model into the verified cache (or ask Ollama to)",
        description="Fetch a catalog model, an http(s) URL, or ollama:NAME. Shows size, "
        "estimated time, free disk and RAM fit before anything is downloaded; resumes "
        "partial downloads; verifies sha256 before the file is kept.")
    p.add_argument("target", nargs="?", metavar="NAME|URL",
                   help="catalog name (see --list), http(s) URL, or ollama:MODEL")
    p.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file")
    p.add_argument("--name", help="name to store a URL download under (default: file name)")
    p.add_argument("--yes", "-y", action="store_true",
                   help="do not ask before a large download")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.add_argument("--ollama-url", metavar="URL",
                   help="Ollama server for ollama:MODEL (default: settings ollama_url)")
    p.add_argument("--list", action="store_true", help="list the catalog and exit")
    p.set_defaults(func=run_pull)

    c = sub.add_parser("cache", help="list, verify, remove cached model files",
                       description="The content-addressed model cache under "
                       "$LOCALINFER_HOME/models.")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = csub.add_parser("list", help="cached models")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=run_cache_list)
    rm = csub.add_parser("rm", help="remove a cached model")
    rm.add_argument("name")
    rm.set_defaults(func=run_cache_rm)
    ver = csub.add_parser("verify", help="re-hash every cached file; exit 1 if any is bad")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.set_defaults(func=run_cache_verify)
    path = csub.add_parser("path", help="print the cache directory")
    path.set_defaults(func=run_cache_path)


def run_pull(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.list:
        return _list_catalog(args, settings)
    if not args.target:
        raise UsageError("pull needs a NAME, URL or ollama:MODEL (see `localinfer pull --list`)")
    info = disclose(args.target, settings, sha256=args.sha256, name=args.name)
    out = sys.stderr if args.json else sys.stdout
    for line in info.lines():
        print(line, file=out)
    out.flush()
    if info.needs_confirmation and not args.yes:
        size = format_bytes(info.download_size)
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise UsageError(f"refusing to download {size} without confirmation "
                             "(no terminal to ask on); pass --yes")
        if not confirm(f"Download {size}?"):
            note("localinfer: nothing downloaded")
            return 1
    bar = ProgressBar(sys.stderr, live=sys.stderr.isatty())
    started = time.monotonic()
    try:
        result = pull(args.target, settings, sha256=args.sha256, name=args.name, progress=bar,
                      ollama_url=args.ollama_url)
    finally:
        bar.close()
    if args.json:
        print_json({"disclosure": info.as_json(), "result": result.as_json()})
        return 0
    if result.ollama_model:
        print(f"Ollama has {result.ollama_model} ({format_bytes(result.size)}, "
              f"{format_duration(time.monotonic() - started)})")
        return 0
    verb = "downloaded" if result.downloaded else "already here"
    print(f"{verb}: {result.name} -> {result.path}")
    if result.verified:
        print(f"sha256 verified: {result.sha256}")
    else:
        print(f"sha256 recorded (nothing to check it against): {result.sha256}; "
              "pass --sha256 to verify a download")
    return 0


def _list_catalog(args: argparse.Namespace, settings: Any) -> int:
    catalog = load_catalog(settings)
    cache = ModelCache.for_settings(settings)
    rows: list[dict[str, Any]] = []
    for entry in catalog:
        plan = make_plan(entry, cache)
        where = plan.local_kind or ("ollama" if not entry.file_sources else "-")
        rows.append({"name": entry.name, "purpose": entry.purpose, "size": entry.size,
                     "size_exact": entry.size_exact, "license": entry.license,
                     "local": where, "path": str(plan.local_path) if plan.local_path else None,
                     "description": entry.description})
    if args.json:
        print_json({"models": rows})
        return 0
    table = [("NAME", "PURPOSE", "SIZE", "HERE", "LICENSE")]
    for r in rows:
        size = ("" if r["size_exact"] else "~") + format_bytes(r["size"])
        table.append((r["name"], r["purpose"] or "-", size, r["local"], r["license"] or "-"))
    print_table(table)
    return 0


def run_cache_list(args: argparse.Namespace) -> int:
    cache = ModelCache.for_settings(settings_from_args(args))
    models = cache.models()
    if args.json:
        print_json({"cache_dir": str(cache.root), "models": [m.as_json() for m in models]})
        return 0
    if not models:
        print(f"No cached models in {cache.root}")
        return 0
    table = [("NAME", "SIZE", "SHA256", "SOURCE")]
    table += [(m.name, format_bytes(m.size), m.sha256[:12], m.source) for m in models]
    print_table(table)
    return 0


def run_cache_rm(args: argparse.Namespace) -> int:
    cache = ModelCache.for_settings(settings_from_args(args))
    before = cache.get(args.name)
    removed = cache.remove(args.name)
    freed = before.size if removed and before else 0
    print(f"removed {args.name}" + (f" (freed {format_bytes(freed)})" if removed
                                    else " (file kept: another name uses it)"))
    return 0


def run_cache_verify(args: argparse.Namespace) -> int:
    cache = ModelCache.for_settings(settings_from_args(args))
    results = cache.verify_all()
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json({"ok": not bad, "files": [
            {"sha256": r.sha256, "path": str(r.path), "names": r.names, "ok": r.ok,
             "problem": r.problem} for r in results]})
    else:
        for r in results:
            names = ", ".join(r.names) or "(no name)"
            status = "ok " if r.ok else "BAD"
            print(f"{status} {names}: {r.path}" + (f" ({r.problem})" if r.problem else ""))
        print(f"{len(results) - len(bad)} ok, {len(bad)} bad"
              + ("; remove bad ones with `localinfer cache rm NAME` and pull again" if bad
                 else ""))
    return 1 if bad else 0


def run_cache_path(args: argparse.Namespace) -> int:
    print(ModelCache.for_settings(settings_from_args(args)).root)
    return 0
