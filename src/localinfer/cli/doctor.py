"""`localinfer doctor`: one line per part of the install; exit 0 only when all hold."""

from __future__ import annotations

import argparse
from typing import Any

from .. import doctor
from .common import add_json_flag, print_json, settings_from_args

# After audit's 20 and 21: a distinct code scripts can test for.
EXIT_UNHEALTHY = 22


def register(sub: Any) -> None:
    p = sub.add_parser(
        "doctor", help="check the install: engine, model, browser files, servers, state files",
        description="One line per check: the settings, the embedded engine and its CPU/GPU "
        "build, the default model (sha256 against the catalog), the browser tier's files, "
        "the local servers found and their ports, and the home's state files (consent, "
        f"remotes, egress ledger, model manifest, tokens). Exit 0 when all hold, "
        f"{EXIT_UNHEALTHY} when any does not.")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checks = doctor.run(lambda: settings_from_args(args))
    code = 0 if all(c.ok for c in checks) else EXIT_UNHEALTHY
    if args.json:
        print_json({"checks": [c.to_json() for c in checks], "exit_code": code})
        return code
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok' if c.ok else 'FAIL':4}  {c.name:<{width}}  {c.detail}")
    return code
