"""`localinfer privacy`: where outbound requests went, from the egress ledger."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..assets.progress import format_bytes
from ..consent import parse_duration
from ..hosts.pool import load_specs
from ..hosts.spec import url_key
from ..ledger import EgressLedger, PrivacyReport
from ..settings import Settings
from .common import print_json, print_table


def register(sub: Any) -> None:
    p = sub.add_parser("privacy", help="show where outbound requests went",
                       description="Report from the egress ledger: every request to a "
                       "non-loopback destination or by the remote tier, with counts and "
                       "bytes. Paths only: no query strings, headers, prompts or keys are "
                       "ever recorded.")
    p.add_argument("--since", metavar="DURATION",
                   help="only the last DURATION (e.g. 1h, 24h, 7d); default: all kept records")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--repair", action="store_true",
                   help="move a damaged ledger aside (never deleted) and start a new one")
    p.set_defaults(func=run)


def summary(report: PrivacyReport, window: str) -> str:
    if report.requests == 0:
        return f"No outbound requests recorded{window}: nothing left this machine."
    noun = "request" if report.requests == 1 else "requests"
    if not report.destinations:
        return f"All {report.requests} {noun}{window} stayed on this machine."
    return (f"{report.left_machine} of {report.requests} {noun}{window} left this machine "
            "or went to a remote provider:")


def destination_rows(report: PrivacyReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("DESTINATION", "TIER", "NETWORK", "PURPOSE", "REQUESTS", "SENT", "RECEIVED", "LAST")]
    rows += [(f"{d.scheme}://{d.host}:{d.port}", d.tier, d.network, ",".join(d.purposes),
              str(d.requests) + (f" ({d.failed} failed)" if d.failed else ""),
              format_bytes(d.bytes_sent), format_bytes(d.bytes_received),
              time.strftime("%Y-%m-%d %H:%M", time.localtime(d.last)))
             for d in report.destinations]
    return rows


def host_rows(report: PrivacyReport, settings: Settings) -> list[tuple[str, ...]]:
    """One row per host the router sent inference to, with its declared name and
    whether it may receive sensitive data."""
    specs = {s.key: s for s in load_specs(settings)}
    rows: list[tuple[str, ...]] = [("HOST", "ADDRESS", "TRUST", "SENSITIVE OK", "REQUESTS",
                                    "CLIENTS", "LAST")]
    for h in report.hosts:
        spec = specs.get(url_key(f"{h.scheme}://{h.host}:{h.port}"))
        sensitive = "yes" if (spec.takes_sensitive if spec else h.trust == "device") else "no"
        rows.append((spec.name or "-" if spec else "-", f"{h.scheme}://{h.host}:{h.port}",
                     h.trust, sensitive,
                     str(h.requests) + (f" ({h.failed} failed)" if h.failed else ""),
                     ",".join(h.clients) or "-",
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(h.last))))
    return rows


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    since = time.time() - parse_duration(args.since) if args.since else None
    ledger = EgressLedger.for_home(settings.home)
    if args.repair:
        try:
            aside = ledger.repair()
        finally:
            ledger.close()
        print(f"moved the damaged ledger to {aside}; a new one starts now" if aside
              else f"the egress ledger {ledger.path} is fine; nothing to repair")
        return 0
    try:
        report = ledger.report(since=since)
    finally:
        ledger.close()
    if args.json:
        print_json(report.to_json())
        return 0
    window = f" in the last {args.since}" if args.since else ""
    print(summary(report, window))
    if report.destinations:
        print_table(destination_rows(report))
    if report.hosts:
        print("Inference requests by host (this machine included):")
        print_table(host_rows(report, settings))
    return 0
