"""`localinfer web export DIR`: the browser tier as a static site."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..assets.progress import format_bytes
from .common import note, settings_from_args


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="the browser tier: export it as static files",
                       description="The browser tier (localinfer.js, the in-browser engine, "
                       "the demo app) is served by `localinfer serve` under /ui/; "
                       "`web export` writes the same app as static files.")
    web_sub = p.add_subparsers(dest="web_command", metavar="COMMAND")
    e = web_sub.add_parser("export", help="write the app as static files to DIR",
                           description="Write the SDK, the engine worker, the pinned "
                           "engine files, the demo app, manifest.json and (unless "
                           "--no-models) the model files to DIR, for any static host "
                           "(e.g. `python -m http.server -d DIR`).")
    e.add_argument("directory", metavar="DIR", type=Path)
    e.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="include this model (repeatable; default: every local GGUF chat "
                   "model the gateway would serve)")
    e.add_argument("--no-models", action="store_true",
                   help="engine, SDK and manifest only (the page then has no in-browser model)")
    e.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    e.set_defaults(func=run_export)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_export(args: argparse.Namespace) -> int:
    from ..web.export import export_site

    settings = settings_from_args(args)
    report = export_site(args.directory, settings, models=args.models,
                         include_models=not args.no_models, force=args.force)
    models = ", ".join(report.models) or "no models"
    note(f"wrote {report.files} files ({format_bytes(report.bytes)}; {models}) to "
         f"{report.directory}; serve it with `python -m http.server -d {report.directory}`")
    for why in report.sandbox_missing:  # the page's sandbox.run fails for that runtime
        note(f"sandbox runtime not exported: {why}")
    return 0
