"""`localinfer engine status|stop`: the home's shared embedded engine (one llama.cpp server
child used by every localinfer process of this home)."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from ..settings import Settings
from .common import add_verb, note, print_json

if TYPE_CHECKING:
    from ..backends.embedded.supervisor import Supervisor


def register(sub: Any) -> None:
    p = sub.add_parser("engine", help="the shared embedded engine (status, stop)",
                       description="The embedded engine is one llama.cpp server child per "
                       "LOCALINFER_HOME, shared by the gateway, CLI commands, scripts and "
                       "MCP; it stops by itself after embedded_idle_timeout without requests.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    add_verb(verbs, "status", run_status, "whether it runs: pid, address, since when",
             json_flag=True)
    add_verb(verbs, "stop", run_stop, "stop it now (the next request starts it again)")


def _supervisor() -> Supervisor:
    # Imported here: building the CLI's parser should not load the engine's backend.
    from ..backends.embedded.supervisor import Supervisor

    settings = Settings()
    return Supervisor(settings.home, idle_timeout=settings.embedded_idle_timeout,
                      start_timeout=settings.embedded_stall_timeout)


def run_status(args: argparse.Namespace) -> int:
    engine = _supervisor().running()
    if args.json:
        print_json(None if engine is None else {
            "pid": engine.pid, "url": engine.url, "started": engine.started,
            "xllamacpp": (engine.compute or {}).get("xllamacpp")})
        return 0
    if engine is None:
        print("not running (the next embedded request starts it)")
        return 0
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(engine.started))
    print(f"running: pid {engine.pid}, {engine.url} (key in engine.json), since {since}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    stopped = _supervisor().stop()
    note("stopped the embedded engine" if stopped else "the embedded engine was not running")
    return 0
