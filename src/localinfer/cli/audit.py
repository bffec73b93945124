"""`localinfer audit`: what on this machine answers beyond it, on every port."""

from __future__ import annotations

import argparse
from typing import Any

from ..audit import EXIT_EXPOSED, EXIT_UNKNOWN, Exposure, audit, exit_code
from ..client import AsyncClient
from .common import open_client, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="report inference servers exposed to the network",
                       description="Every TCP socket listening beyond loopback on this "
                       "machine (from the kernel's socket table): which process owns it, "
                       "what answers there, whether it answers without a password, and "
                       "known dangers (old Ollama and llama.cpp builds, llama-server's "
                       "router or MCP proxy, open CORS). Exit 0: no inference server "
                       f"exposed; {EXIT_EXPOSED}: one is; {EXIT_UNKNOWN}: this system does "
                       "not say which addresses servers listen on.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


async def every_port(client: AsyncClient) -> list[Exposure]:
    return await audit(await client.discovery.servers(), client.policy, every_port=True,
                       timeout=max(2.0, client.settings.discovery_timeout))


def run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        found = client.run(lambda: every_port(client.aio))
    code = exit_code(found)
    if args.json:
        print_json({"exposure": [e.to_json() for e in found], "exit_code": code})
        return code
    if not found:
        print("Nothing on this machine listens beyond it; nothing exposed.")
    for e in found:
        mark = "EXPOSED" if e.exposed and e.identified else \
            "?" if e.exposed is None or not e.identified else "ok"
        print(f"{mark:8} {e.message}")
    return code
