"""`localinfer pull` and `localinfer cache`: fetch models knowingly, keep them verified."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from ..assets import Disclosure, ModelCache, disclose, load_catalog
from ..assets.cache import PartialDownload
from ..assets.plan import make_plan
from ..assets.progress import format_bytes, format_duration
from ..assets.pull import Limits, apull
from ..errors import ModelNotFound, UsageError
from ..syncbridge import run_sync
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
                   help="do not ask before a large download (or one of unknown size)")
    p.add_argument("--max-size", metavar="SIZE", type=_size,
                   help="refuse or stop a download larger than this (e.g. 2G); needed with "
                   "--yes when the server does not say the size and there is no terminal")
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
    rm = csub.add_parser("rm", help="remove a cached model, or an unfinished download of it")
    rm.add_argument("name")
    rm.set_defaults(func=run_cache_rm)
    clean = csub.add_parser("clean", help="remove every unfinished (partial) download")
    clean.set_defaults(func=run_cache_clean)
    repair = csub.add_parser("repair", help="rebuild a damaged manifest from the cached files")
    repair.set_defaults(func=run_cache_repair)
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
    if not _confirmed(info, args):
        note("localinfer: nothing downloaded")
        return 1
    bar = ProgressBar(sys.stderr, live=sys.stderr.isatty())
    started = time.monotonic()
    try:
        result = run_sync(lambda: apull(args.target, settings, sha256=args.sha256,
                                        name=args.name, progress=bar,
                                        ollama_url=args.ollama_url, limits=_limits(args)))
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


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def _size(text: str) -> int:
    """``--max-size``: 500M, 2G, 1.5GB, or bytes (K/M/G/T are powers of 1024)."""
    match = _SIZE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"bad size '{text}' (try 500M or 2G)")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))


def _terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _limits(args: argparse.Namespace) -> Limits:
    """With no one to ask, a download that does not say its size needs both --yes and a
    --max-size. The check is in the download (a HEAD that failed says nothing about it)."""
    unattended = not _terminal() and not (args.yes and args.max_size is not None)
    return Limits(max_size=args.max_size, refuse_unknown_size=unattended)


def _confirmed(info: Disclosure, args: argparse.Namespace) -> bool:
    """Whether the download may start: refused (UsageError) when it cannot be asked
    about; False when the user said no."""
    size = None if info.cached or info.ollama_model else info.download_size
    cap = args.max_size
    if cap is not None and size is not None and size > cap:
        raise UsageError(f"{info.name} is {format_bytes(size)}, more than --max-size "
                         f"{format_bytes(cap)}; nothing downloaded")
    if size is None and not info.cached and info.ollama_model is None and _terminal():
        # No size to disclose: ask. Without a terminal the download itself refuses a
        # response without a length unless --yes and --max-size were given (_limits).
        return args.yes or confirm(f"Download {info.name} of unknown size"
                                   + (f" (at most {format_bytes(cap)})?" if cap else "?"))
    if info.needs_confirmation and not args.yes:
        shown = format_bytes(info.download_size)
        if not _terminal():
            raise UsageError(f"refusing to download {shown} without confirmation "
                             "(no terminal to ask on); pass --yes")
        return confirm(f"Download {shown}?")
    return True


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
    problem = cache.problem()
    if problem is not None:  # one line naming the file and `cache repair`, exit 2
        raise problem
    models, partials = cache.models(), cache.partials()
    if args.json:
        print_json({"cache_dir": str(cache.root), "models": [m.as_json() for m in models],
                    "partial": [p.as_json() for p in partials]})
        return 0
    if not models:
        print(f"No cached models in {cache.root}")
    else:
        table = [("NAME", "SIZE", "SHA256", "SOURCE")]
        table += [(m.name, format_bytes(m.size), m.sha256[:12], m.source) for m in models]
        print_table(table)
    if partials:
        print("\nPartial downloads (pull again to resume; `localinfer cache rm NAME` or "
              "`localinfer cache clean` to remove):")
        print_table([("NAME", "SO FAR", "URL")] + [
            (p.name or p.key, _so_far(p), p.url or "(a wheel being unpacked)")
            for p in partials])
    return 0


def _so_far(partial: PartialDownload) -> str:
    total = f" of {format_bytes(partial.total)}" if partial.total else ""
    return f"{format_bytes(partial.size)}{total}"


def run_cache_rm(args: argparse.Namespace) -> int:
    cache = ModelCache.for_settings(settings_from_args(args))
    name = args.name
    partials = [p for p in cache.partials() if name in (p.name, p.key)]
    for partial in partials:
        if cache.remove_partial(partial):
            print(f"removed the partial download of {name} ({format_bytes(partial.size)})")
        else:
            note(f"localinfer: kept the partial download of {name}: a pull is using it")
    problem = cache.problem()
    if problem is not None and not partials:
        raise problem
    before = None if problem is not None else cache.get(name)
    if before is None:
        if partials:
            return 0
        raise ModelNotFound(name, [m.name for m in cache.models()])
    removed = cache.remove(name)
    print(f"removed {name}" + (f" (freed {format_bytes(before.size)})" if removed
                               else " (file kept: another name uses it)"))
    return 0


def run_cache_clean(args: argparse.Namespace) -> int:
    cache = ModelCache.for_settings(settings_from_args(args))
    removed, busy = cache.clean()
    freed = sum(p.size for p in removed)
    plural = "" if len(removed) == 1 else "s"
    print(f"removed {len(removed)} partial download{plural} (freed {format_bytes(freed)})")
    for partial in busy:
        note(f"localinfer: kept {partial.name or partial.key}: a pull is using it")
    return 0


def run_cache_repair(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    cache = ModelCache.for_settings(settings)
    known = {e.sha256: e.name for e in load_catalog(settings) if e.sha256}
    report = cache.repair(known)
    if report.set_aside is not None:
        print(f"the damaged manifest was moved aside to {report.set_aside}")
    facts = (("kept", report.kept), ("named from the cached files", report.named),
             ("dropped (their file is gone or bad)", report.dropped))
    for what, names in facts:
        if names:
            print(f"{what}: {', '.join(names)}")
    for blob in report.bad_blobs:
        print(f"BAD {blob}: does not hash to its name (left in place; remove it)")
    print(f"{len(report.kept) + len(report.named)} models in {cache.root / 'manifest.json'}")
    return 0


def run_cache_verify(args: argparse.Namespace) -> int:
    cache = ModelCache.for_settings(settings_from_args(args))
    problem = cache.problem()
    if problem is not None:
        raise problem
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
