"""`localinfer consent grant|revoke|list`: the user's recorded yes to a remote provider.

On a terminal, `grant` shows what would be sent where and asks; scripts say `--yes`.
Without a terminal and without `--yes` it refuses, so consent is never implied."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..consent import ConsentStore, parse_duration
from ..errors import UsageError
from ..http import network_class, parse_url
from ..remote import ProviderStore, RemoteProvider
from ..settings import Settings
from .common import add_verb, confirm, note, print_json, print_table


def register(sub: Any) -> None:
    p = sub.add_parser("consent", help="allow or revoke a remote provider",
                       description="Without a consent grant, a remote provider receives no "
                       "connection at all. Sensitive requests never go remote, grant or not.")
    csub = p.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    grant = add_verb(csub, "grant", run_grant, "allow a remote provider",
                     description="Allow requests that no local tier can serve to go to "
                     "remote provider NAME. On a terminal, shows what would be sent where "
                     "and asks.")
    grant.add_argument("name", help="a provider from `localinfer remote list`")
    grant.add_argument("--for", dest="duration", metavar="DURATION",
                       help="expire after this long (e.g. 30m, 1h, 7d); default: until revoked")
    grant.add_argument("--yes", "-y", action="store_true",
                       help="grant without asking (for scripts)")
    revoke = add_verb(csub, "revoke", run_revoke, "withdraw a grant (takes effect at once)")
    revoke.add_argument("name")
    add_verb(csub, "list", run_list, "list grants with time and expiry", json_flag=True)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def disclosure(provider: RemoteProvider, duration: float | None, now: float) -> str:
    url = parse_url(provider.base_url)
    crypto = "encrypted" if url.scheme == "https" else "UNENCRYPTED"
    where = f"{network_class(url.host or '')} network, {crypto}"
    until = (f"{_when(now + duration)} (then it expires)" if duration
             else f"until `localinfer consent revoke {provider.name}`")
    return "\n".join([
        f"Grant consent to remote provider '{provider.name}'?",
        f"  Where:  {provider.base_url} ({where})",
        "  What:   the messages (or texts to embed), model name and options of requests "
        "that no local tier can serve;",
        f"          authenticated with the key in ${provider.key_env}. Requests marked "
        "sensitive never go.",
        f"  Models: {', '.join(provider.models) or 'none configured'}",
        f"  Until:  {until}",
    ])


def run_grant(args: argparse.Namespace) -> int:
    settings = Settings()
    provider = ProviderStore(settings.home, settings.remotes).require(args.name)
    consent = ConsentStore(settings.home)
    duration = parse_duration(args.duration) if args.duration else None
    if not args.yes:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise UsageError(f"not a terminal: consent to '{provider.name}' is granted only "
                             "when asked on a terminal, or with --yes")
        note(disclosure(provider, duration, consent.clock()))
        if not confirm("Allow?"):
            note("consent not granted")
            return 1
    grant = consent.grant(provider.name, provider.base_url, duration=duration)
    until = f"until {_when(grant.expires_at)}" if grant.expires_at else "until revoked"
    print(f"consent granted: '{provider.name}' ({provider.base_url}) {until}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    consent = ConsentStore(Settings().home)
    if consent.revoke(args.name):
        print(f"consent for '{args.name}' revoked")
    else:
        print(f"no consent grant for '{args.name}'")
    return 0


def run_list(args: argparse.Namespace) -> int:
    consent = ConsentStore(Settings().home)
    now = consent.clock()
    grants = consent.list()
    if args.json:
        print_json({"grants": [g.to_json(now) for g in grants]})
        return 0
    if not grants:
        print("No consent grants: no remote provider may be contacted.")
        return 0
    rows = [("PROVIDER", "BASE URL", "GRANTED", "EXPIRES", "STATUS")]
    rows += [(g.provider, g.base_url, _when(g.granted_at), _when(g.expires_at),
              "expired" if g.expired(now) else "active") for g in grants]
    print_table(rows)
    return 0
