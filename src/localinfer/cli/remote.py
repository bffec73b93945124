"""`localinfer remote add|list|rm`: the hosted OpenAI-compatible providers the remote
tier may use, only ever with consent. Adding a provider grants nothing and contacts
nothing; the key stays in its environment variable."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from ..consent import ConsentStore, Grant
from ..errors import UsageError
from ..remote import REMOTES_FILE, ProviderStore, RemoteProvider
from ..settings import Settings
from .common import add_verb, note, print_json, print_table


def register(sub: Any) -> None:
    p = sub.add_parser("remote", help="configure remote providers (used only with consent)",
                       description="Remote providers are hosted OpenAI-compatible APIs, the "
                       "last tier, used only with consent (`localinfer consent grant NAME`) "
                       f"and never for sensitive requests. Kept in $LOCALINFER_HOME/{REMOTES_FILE}"
                       "; [remotes.NAME] tables in config.toml work too.")
    rsub = p.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    add = add_verb(rsub, "add", run_add, "add (or replace) a provider",
                   description="Add a provider. Nothing is contacted; the API key is read "
                   "from --key-env at request time and never written to disk.")
    add.add_argument("name", help="short name, e.g. openai")
    add.add_argument("base_url", help="root of its OpenAI API, e.g. https://api.openai.com/v1")
    add.add_argument("--key-env", required=True, metavar="VAR",
                     help="environment variable holding the API key (its name, not the key)")
    add.add_argument("--model", action="append", default=[], metavar="ID",
                     help="a model id it serves (repeatable); requests naming it, or "
                     "unnamed requests no local tier can serve, may go there with consent")
    add_verb(rsub, "list", run_list, "list providers and their consent", json_flag=True)
    rm = add_verb(rsub, "rm", run_rm, "remove a provider and its consent grant")
    rm.add_argument("name")


def stores(settings: Settings) -> tuple[ProviderStore, ConsentStore]:
    return ProviderStore(settings.home, settings.remotes), ConsentStore(settings.home)


def run_add(args: argparse.Namespace) -> int:
    settings = Settings()
    providers, consent = stores(settings)
    provider = RemoteProvider.checked(args.name, args.base_url, args.key_env, args.model)
    providers.add(provider)
    models = ", ".join(provider.models) or "none"
    print(f"added remote '{provider.name}': {provider.base_url} "
          f"(key from ${provider.key_env}; models: {models})")
    if not provider.models:
        note("note: no --model given, so nothing will be routed there; add one with "
             f"`localinfer remote add {provider.name} {provider.base_url} "
             f"--key-env {provider.key_env} --model ID`")
    if provider.plaintext_public:
        note("warning: plain http to a non-loopback host: prompts and the key would cross "
             "the network unencrypted; use https")
    if not os.environ.get(provider.key_env):
        note(f"note: ${provider.key_env} is not set in this shell")
    grant = consent.get(provider.name)
    if grant is not None and grant.base_url != provider.base_url:
        note(f"note: the earlier consent grant was for {grant.base_url}; it no longer applies")
    if not consent.valid(provider.name, provider.base_url):
        note(f"it will be used only after `localinfer consent grant {provider.name}`")
    return 0


def grant_state(grant: Grant | None, provider: RemoteProvider, now: float) -> str:
    if grant is None:
        return "none"
    if grant.base_url != provider.base_url:
        return "stale (other URL)"
    if grant.expired(now):
        return "expired"
    if grant.expires_at is None:
        return "granted"
    return "until " + time.strftime("%Y-%m-%d %H:%M", time.localtime(grant.expires_at))


def run_list(args: argparse.Namespace) -> int:
    settings = Settings()
    providers, consent = stores(settings)
    now = consent.clock()
    listed = providers.all()
    if args.json:
        print_json({"remotes": [
            {**p.model_dump(),
             "consent": grant_state(consent.get(p.name), p, now),
             "key_set": bool(os.environ.get(p.key_env))}
            for p in listed]})
        return 0
    if not listed:
        print("No remote providers. Add one with "
              "`localinfer remote add NAME BASE_URL --key-env VAR --model ID`.")
        return 0
    rows = [("NAME", "BASE URL", "KEY ENV", "MODELS", "CONSENT", "SOURCE")]
    rows += [(p.name, p.base_url, "$" + p.key_env, ", ".join(p.models) or "-",
              grant_state(consent.get(p.name), p, now), p.source) for p in listed]
    print_table(rows)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    settings = Settings()
    providers, consent = stores(settings)
    if not providers.remove(args.name):
        raise UsageError(f"no remote provider named '{args.name}' in "
                         f"{settings.home / REMOTES_FILE}")
    revoked = consent.revoke(args.name)
    print(f"removed remote '{args.name}'" + (" and its consent grant" if revoked else ""))
    return 0
