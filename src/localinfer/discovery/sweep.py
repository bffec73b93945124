"""One discovery sweep: which servers answer, and what they are.

1. Loopback candidates first get a raw TCP connect: a closed port refuses in
   microseconds, so a machine running nothing is swept in well under a millisecond
   and no HTTP client is ever built.
2. Each open server gets the first-round probes (a few in flight at a time, over
   kept-alive connections), is matched against the fingerprint table, then gets the
   few extra probes its row needs for the model list and version (often none).

Configured non-loopback URLs skip step 1 and go straight through the HTTP layer, so
offline mode refuses them and the egress record sees them.

Besides the default ports, the sockets of known server programs on any port are probed
(machine.py: the listening-socket table and its owners); nothing else is.
A server that refuses the probes for want of a key is listed as such (locked.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EgressBlocked
from ..http import (
    AiohttpTransport,
    AuthHook,
    EgressPolicy,
    HttpClient,
    HTTPError,
    Transport,
    make_client,
    network_class,
    parse_url,
)
from ..settings import Settings
from ..types import ModelInfo, ServerInfo
from .answers import Answer, Answers, Probe
from .fingerprints import (
    FINGERPRINTS,
    Fingerprint,
    default_ports,
    first_round,
    identify,
    port_kind,
    row_for,
)
from .locked import NeedsKey, asks_for_key
from .machine import Seen, servers_here

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
PROBES_IN_FLIGHT = 3


@dataclass(frozen=True)
class Candidate:
    base_url: str
    host: str
    port: int
    order: int
    # What the owning program or the default port suggests (answers still decide); a
    # server refusing every probe for want of a key is listed under this kind.
    hint: str | None = None

    @property
    def loopback(self) -> bool:
        return network_class(self.host) == "loopback"


def normalize_base_url(url: str) -> str:
    """``localhost:11434/v1/`` → ``http://localhost:11434``: the server root."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def candidates(settings: Settings, table: Iterable[Fingerprint] = FINGERPRINTS,
               here: Iterable[Seen] = ()) -> list[Candidate]:
    """Declared hosts and configured servers (the user named them, so they rank first),
    then the default loopback ports if scanned, then sockets of known server programs
    (``here``); each server once."""
    declared = [h["url"] for h in settings.hosts if isinstance(h.get("url"), str)]
    urls = [normalize_base_url(u) for u in [*declared, *settings.servers]]
    if settings.scan_default_ports:
        # IPv4 loopback only: the servers above bind 127.0.0.1 by default; a server on ::1
        # alone can be listed in LOCALINFER_SERVERS as http://[::1]:PORT.
        urls += [f"http://{LOOPBACK}:{port}" for port in default_ports(table)]
    hints = {(s.host, s.port): s.kind for s in here}
    urls += [s.base_url for s in here]
    found: dict[tuple[str, int], Candidate] = {}
    for order, base in enumerate(urls):
        try:
            parsed = parse_url(base)
        except ValueError:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            log.warning("discovery: ignoring server URL %r (expected http(s)://host:port)",
                        base)
            continue
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        host = parsed.host
        key = (LOOPBACK if host == "localhost" else host, port)
        hint = hints.get(key) or (port_kind(port, table) if network_class(host) == "loopback"
                                  else None)
        found.setdefault(key, Candidate(base, host, port, order, hint))
    return list(found.values())


_ACCEPT_JSON = {"accept": "application/json"}


async def _read(client: HttpClient, url: str, probe: Probe) -> Answer:
    async with client.stream("GET", url, headers=_ACCEPT_JSON) as response:
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > probe.max_bytes:
                truncated = True
                break
        return Answer(response.status_code,
                      {k.lower(): v for k, v in response.headers.items()},
                      bytes(body[:probe.max_bytes]), truncated)


async def _fetch(client: HttpClient, base_url: str, probes: Iterable[Probe],
                 timeout: float) -> dict[str, Answer]:
    """GET the probes, keeping what answered within ``timeout``; a probe that fails or
    is still waiting then is simply absent."""
    # A few probes at a time per server: they reuse kept-alive connections instead of
    # each opening its own, which costs the client and the server more than waiting.
    gate = asyncio.Semaphore(PROBES_IN_FLIGHT)

    async def one(probe: Probe) -> Answer:
        async with gate:
            return await _read(client, base_url + probe.path, probe)

    tasks = {asyncio.ensure_future(one(p)): p for p in probes}
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    answers: dict[str, Answer] = {}
    for task in done:
        error = task.exception()
        if error is None:
            answers[tasks[task].path] = task.result()
        elif not isinstance(error, (HTTPError, EgressBlocked, OSError, ValueError)):
            raise error
    return answers


def _server_info(row: Fingerprint, base_url: str, answers: Answers,
                 started: float) -> ServerInfo:
    server = ServerInfo(kind=row.kind, base_url=base_url, api_base=base_url + row.api_suffix,
                        version=row.version(answers))
    server.models = [ModelInfo(id=m.id, backend=server.name, tier="local",
                               capabilities=list(m.capabilities), loaded=m.loaded,
                               aliases=list(m.aliases), tools=m.tools,
                               context=m.context)
                     for m in row.models(answers)]
    server.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return server


def _locked(row: Fingerprint, base_url: str, started: float) -> NeedsKey:
    return NeedsKey(kind=row.kind, base_url=base_url, api_base=base_url + row.api_suffix,
                    latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def probe_server(client: HttpClient, base_url: str, timeout: float,
                       table: tuple[Fingerprint, ...] = FINGERPRINTS, *,
                       hint: str | None = None) -> ServerInfo | None:
    """Identify the server at ``base_url``; None if nothing (or our own gateway) answers.
    A server that refuses for want of a key is a ``NeedsKey``: of the kind it answers
    like, else of ``hint`` (its program, its default port) — never a guess without one."""
    started = time.perf_counter()
    answers = await _fetch(client, base_url, first_round(table), timeout)
    if not answers:
        return None
    row = identify(answers, table)
    if row is not None and row.skip:
        return None
    if row is None:
        hinted = row_for(hint, table) if hint else None
        if hinted is not None and asks_for_key(answers, ("/v1/models",)):
            return _locked(hinted, base_url, started)
        return None
    missing = [p for p in row.detail_probes if p.path not in answers]
    if missing:
        answers = {**answers, **await _fetch(client, base_url, missing, timeout)}
    if asks_for_key(answers, [p.path for p in row.models.probes] or ["/v1/models"]):
        return _locked(row, base_url, started)
    return _server_info(row, base_url, answers, started)


def _host_tokens(settings: Settings) -> AuthHook | None:
    """Hosts declared with ``token_env`` get their bearer token on probes too."""
    from ..hosts.backend import EnvBearer
    from ..hosts.spec import url_key

    tokens = {url_key(h["url"]): EnvBearer(h["token_env"]) for h in settings.hosts
              if isinstance(h.get("url"), str) and isinstance(h.get("token_env"), str)}
    if not tokens:
        return None

    def per_host(url: Any) -> Mapping[str, str]:
        bearer = tokens.get(url_key(str(url)))
        return bearer(url) if bearer is not None else {}

    return per_host


async def discover(settings: Settings, policy: EgressPolicy, *,
                   transport: Transport | None = None) -> list[ServerInfo]:
    """Find and identify inference servers. Loopback servers come before remote ones;
    within each, configured servers in the order given, then default ports.

    ``transport``: the network (http.Transport), for tests to stand in for it: the
    loopback port checks and the probes go through it, the same path as production. The
    machine's socket table is read only without one (it is this machine, not the network).
    """
    timeout = settings.discovery_timeout
    targets: list[Candidate] = []
    checks: list[Candidate] = []
    # The socket table only with the real network: a test transport stands in for it.
    here = servers_here() if settings.scan_default_ports and transport is None else []
    for cand in candidates(settings, here=here):
        if cand.loopback:
            checks.append(cand)
            continue
        try:
            policy.check(parse_url(cand.base_url))
        except EgressBlocked as exc:
            log.info("discovery: %s", exc.message)
            continue
        targets.append(cand)
    # Loopback ports are looked at first (a TCP connect, no byte sent: nothing for the
    # policy to ask or the ledger to record), through the same transport as the probes.
    network = transport or AiohttpTransport()
    if checks:
        opened = await asyncio.gather(*(network.connectable(c.host, c.port, timeout)
                                        for c in checks))
        targets += [c for c, is_open in zip(checks, opened, strict=True) if is_open]
    if not targets:
        return []  # no HTTP client built (the idle sweep's cost)
    async with make_client(policy, tier="local", purpose="discovery",
                           connect_timeout=timeout, read_timeout=timeout,
                           auth=_host_tokens(settings), transport=network) as client:
        found = await asyncio.gather(*(probe_server(client, c.base_url, timeout, hint=c.hint)
                                       for c in targets))
    ranked = sorted(zip(targets, found, strict=True),
                    key=lambda pair: (not pair[0].loopback, pair[0].order))
    return [server for _, server in ranked if server is not None]
