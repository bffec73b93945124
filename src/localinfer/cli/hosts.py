"""`localinfer hosts add|list|rm`: the inference hosts in config.toml's [[hosts]]."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UsageError
from ..hosts.configfile import editing, read_hosts, write_hosts
from ..hosts.spec import HostSpec, HostSpecError, declared_hosts, make_spec
from ..settings import Settings
from .common import add_verb, print_json, print_table


def register(sub: Any) -> None:
    p = sub.add_parser("hosts", help="declare inference hosts: trust, preference, weight",
                       description="Inference hosts localinfer routes over, kept as [[hosts]] "
                       "in config.toml. Trust `device` is this machine (loopback only), `lan` "
                       "your machines over a network; sensitive requests go only to device "
                       "hosts and hosts added with --trusted.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = add_verb(verbs, "add", run_add, "add (or replace, by name) a host")
    add.add_argument("url", help="the server's base URL, e.g. http://192.168.1.20:11434 "
                     "(no user:password in it: a token goes in --token-env)")
    add.add_argument("--name", help="a short name (default: host:port)")
    add.add_argument("--trust", choices=("device", "lan"),
                     help="device: this machine (loopback URLs only); lan: another machine. "
                     "Default: device for loopback, else lan")
    add.add_argument("--token-env", metavar="VAR",
                     help="environment variable holding the host's bearer token (read per "
                     "request; the token is never written anywhere)")
    add.add_argument("--prefer", action="store_true",
                     help="send requests here first whenever it is healthy")
    add.add_argument("--weight", type=float, default=1.0,
                     help="tie-breaker between equally busy hosts (higher first; default 1)")
    add.add_argument("--trusted", action="store_true",
                     help="this lan host may receive sensitive requests")
    add_verb(verbs, "list", run_list, "list declared hosts", json_flag=True)
    rm = add_verb(verbs, "rm", run_rm, "remove a host by name")
    rm.add_argument("name")


def _spec(args: argparse.Namespace) -> HostSpec:
    raw: dict[str, Any] = {"url": args.url, "name": args.name, "trust": args.trust,
                           "token_env": args.token_env, "prefer": args.prefer,
                           "weight": args.weight, "trusted": args.trusted}
    try:
        return make_spec({k: v for k, v in raw.items() if v is not None}, "hosts add")
    except HostSpecError as exc:
        raise UsageError(str(exc)) from None


def run_add(args: argparse.Namespace) -> int:
    path = Settings().config_file
    spec = _spec(args)
    with editing(path):
        hosts = read_hosts(path)
        replaced = any(h.name == spec.name for h in hosts)
        hosts = [h for h in hosts if h.name != spec.name]
        same_url = [h.name for h in hosts if h.key == spec.key]
        if same_url:
            raise UsageError(f"{spec.url} is already host {same_url[0]!r}; "
                             f"`localinfer hosts rm {same_url[0]}` first")
        write_hosts(path, [*hosts, spec])
    verb = "replaced" if replaced else "added"
    sensitive = "may receive sensitive requests" if spec.takes_sensitive else \
        "never receives sensitive requests (add --trusted to allow)"
    print(f"{verb} host {spec.name} ({spec.trust}) at {spec.url}: {sensitive}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        hosts = declared_hosts(settings.hosts, settings.servers)
    except HostSpecError as exc:
        raise UsageError(f"{settings.config_file}: {exc}") from None
    if args.json:
        print_json({"hosts": [h.to_json() for h in hosts]})
        return 0
    if not hosts:
        print("No hosts declared (localinfer hosts add URL); discovery still finds servers "
              "on this machine's default ports.")
        return 0
    rows: list[tuple[str, ...]] = [("NAME", "URL", "TRUST", "SENSITIVE", "PREFER", "WEIGHT",
                                    "TOKEN", "FROM")]
    rows += [(h.name or "-", h.url, h.trust, "yes" if h.takes_sensitive else "no",
              "yes" if h.prefer else "-", f"{h.weight:g}", f"${h.token_env}" if h.token_env
              else "-", "config.toml" if h.declared else "LOCALINFER_SERVERS")
             for h in hosts]
    print_table(rows)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    path = Settings().config_file
    with editing(path):
        hosts = read_hosts(path)
        kept = [h for h in hosts if h.name != args.name]
        if len(kept) == len(hosts):
            names = ", ".join(h.name or h.url for h in hosts) or "none"
            raise UsageError(f"no host named {args.name!r} in {path} (hosts: {names})")
        write_hosts(path, kept)
    print(f"removed host {args.name}")
    return 0
