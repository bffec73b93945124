"""`localinfer tokens add|rm|list`: per-client bearer tokens for the gateway."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import UsageError
from ..settings import Settings
from ..tokens import TokenStore
from .common import add_verb, note, print_json, print_table


def register(sub: Any) -> None:
    p = sub.add_parser("tokens", help="per-client gateway tokens (add, rm, list)",
                       description="Bearer tokens for `localinfer serve`, one per client, "
                       "stored hashed in tokens.json under LOCALINFER_HOME. Once any exists "
                       "the gateway requires one (or LOCALINFER_TOKEN) on every request; the "
                       "egress ledger records the token's name, never the secret.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = add_verb(verbs, "add", run_add, "create a token; prints the secret once")
    add.add_argument("name", help="who it is for, e.g. alice-laptop")
    rm = add_verb(verbs, "rm", run_rm,
                  "revoke a token (refused from the next request; its open streams end)")
    rm.add_argument("name")
    add_verb(verbs, "list", run_list, "list token names (never secrets)", json_flag=True)


def _store() -> TokenStore:
    return TokenStore(Settings().ensure_home())


def run_add(args: argparse.Namespace) -> int:
    secret = _store().add(args.name)
    print(secret)
    note(f"token {args.name!r} created; this is the only time its secret is shown. "
         "Clients send `Authorization: Bearer <secret>`.")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    store = _store()
    if not store.remove(args.name):
        names = ", ".join(sorted(store.all())) or "none"
        raise UsageError(f"no token named {args.name!r} (tokens: {names})")
    print(f"revoked token {args.name}")
    if not store.all():
        note("no client tokens left: a gateway already running keeps requiring one, so it "
             "lets nobody in until `localinfer tokens add NAME` or a restart")
    return 0


def run_list(args: argparse.Namespace) -> int:
    tokens = _store().all()
    if args.json:
        print_json({"tokens": [{"name": t.name, "created": t.created}
                               for t in tokens.values()]})
        return 0
    if not tokens:
        print("No client tokens (localinfer tokens add NAME).")
        return 0
    rows: list[tuple[str, ...]] = [("NAME", "CREATED")]
    rows += [(t.name, time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created)))
             for t in tokens.values()]
    print_table(rows)
    return 0
