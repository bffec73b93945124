"""`localinfer audit`: which inference servers here answer beyond this machine."""

from __future__ import annotations

import argparse
from typing import Any

from ..audit import EXIT_EXPOSED, EXIT_UNKNOWN, exit_code
from .common import open_client, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="report inference servers exposed to the network",
                       description="For each inference server on this machine: does it "
                       "listen on a non-loopback address (from /proc/net/tcp{,6}), and does "
                       "it answer without a password? Exit 0: nothing exposed; "
                       f"{EXIT_EXPOSED}: something is; {EXIT_UNKNOWN}: this system does not "
                       "say which addresses servers listen on.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        found = client.exposure()
    code = exit_code(found)
    if args.json:
        print_json({"exposure": [e.to_json() for e in found], "exit_code": code})
        return code
    if not found:
        print("No inference server found on this machine; nothing exposed.")
    for e in found:
        mark = "EXPOSED" if e.exposed and e.identified else \
            "?" if e.exposed is None or not e.identified else "ok"
        print(f"{mark:8} {e.message}")
    return code
