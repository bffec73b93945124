"""What this machine exposes: every TCP socket listening beyond loopback, what answers
there (an inference server of a known kind, something else, nothing HTTP), which process
owns it, whether it answers without a key, and what is known to be dangerous about it
(audit_dangers.py).

Listening sockets come from the kernel (discovery/sockets.py: sock_diag or
``/proc/net/tcp{,6}``), else from ``lsof`` (macOS, BSDs); without either they are
"unknown" rather than guessed. Probes go over loopback (a wildcard socket is reached on
127.0.0.1 or ::1): the audit never probes an address off this machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .audit_dangers import PROBE_ORIGIN, Seen, dangers, paths_for
from .discovery.answers import Answers, Probe, answer
from .discovery.fingerprints import FINGERPRINTS
from .discovery.locked import KEY_STATUSES, NeedsKey
from .discovery.processes import server_kind
from .discovery.sockets import PROC_NET, Listener, Owned, owned_listeners
from .discovery.sockets import parse_lsof as _parse_lsof_owned
from .discovery.sockets import parse_proc_net as parse_proc_net
from .discovery.sockets import read_listeners as read_listeners
from .discovery.sweep import _fetch, probe_server
from .http import (
    EgressPolicy,
    HttpClient,
    HTTPError,
    make_client,
    network_class,
    parse_url,
    port_of,
)
from .types import ServerInfo

EXIT_EXPOSED = 20
EXIT_UNKNOWN = 21
# What every exposed socket is asked (issue 23): cheap, read-only GETs.
AUDIT_PROBES = tuple(Probe(p, 4096) for p in ("/", "/v1/models", "/api/version", "/health"))

Auth = Literal["none", "required", "unknown"]

__all__ = ["EXIT_EXPOSED", "EXIT_UNKNOWN", "Exposure", "Listener", "audit", "exit_code",
           "parse_lsof", "parse_proc_net", "read_listeners"]


def parse_lsof(text: str) -> list[Listener]:
    """``lsof -F n`` output as listeners (owners dropped)."""
    return [o.listener for o in _parse_lsof_owned(text)]


@dataclass(frozen=True)
class Exposure:
    name: str
    kind: str
    base_url: str
    port: int
    listens: list[str]
    exposed: bool | None  # None: cannot tell on this system
    auth: Auth
    identified: bool = True
    process: str | None = None
    dangers: tuple[str, ...] = field(default=())

    @property
    def message(self) -> str:
        if self.exposed is None:
            return (f"{self.kind} at {self.base_url}: cannot tell which addresses it listens "
                    "on here (no /proc/net/tcp, no lsof)")
        where = ", ".join(self.listens) or self.base_url
        owner = f" ({self.process})" if self.process else ""
        if not self.exposed:
            return f"{self.kind} on {where}: this machine only"
        if not self.identified:
            return (f"{self.kind}{owner} listens on {where} beyond this machine: no inference "
                    "server answered there")
        if self.auth == "none":
            text = (f"{self.kind}{owner} on {where} answers anyone on your network without "
                    "a password")
        elif self.auth == "required":
            text = (f"{self.kind}{owner} on {where} is reachable from your network; it asks "
                    "for a token")
        else:
            text = f"{self.kind}{owner} on {where} is reachable from your network"
        return "; ".join([text, *self.dangers])

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "base_url": self.base_url,
                "port": self.port, "listens": self.listens,
                "exposed": "unknown" if self.exposed is None else self.exposed,
                "auth": self.auth, "identified": self.identified, "process": self.process,
                "dangers": list(self.dangers), "message": self.message}


def _auth_of(answers: Answers, api_paths: Iterable[str]) -> Auth:
    got = [answer(answers, p) for p in api_paths]
    if any(a.status in KEY_STATUSES for a in got):
        return "required"
    return "none" if any(a.ok for a in got) else "unknown"


async def _auth(client: HttpClient, server: ServerInfo) -> Auth:
    if isinstance(server, NeedsKey):
        return "required"
    try:
        response = await client.get(server.api_base.rstrip("/") + "/models")
    except HTTPError:
        return "unknown"
    if response.status_code in KEY_STATUSES:
        return "required"
    return "none" if response.status_code < 400 else "unknown"


def _port(server: ServerInfo) -> int:
    return port_of(parse_url(server.base_url))


def _probe_host(sock: Listener) -> str:
    if sock.wildcard:
        return "[::1]" if ":" in sock.address else "127.0.0.1"
    return f"[{sock.address}]" if ":" in sock.address else sock.address


async def _dangers(client: HttpClient, server: ServerInfo, timeout: float) -> list[str]:
    paths = paths_for(server.kind)
    answers = await _fetch(client, server.base_url, [Probe(p, 4096) for p in paths],
                           timeout) if paths else {}
    return dangers(Seen(server.kind, server.version, answers))


async def _exposed_socket(client: HttpClient, sock: Listener, owner: str | None,
                          hint: str | None, timeout: float) -> Exposure:
    """Probe one socket listening beyond loopback that discovery did not already know."""
    base = f"http://{_probe_host(sock)}:{sock.port}"
    answers = await _fetch(client, base, AUDIT_PROBES, timeout)
    server = await probe_server(client, base, timeout, hint=hint) if answers else None
    if server is None:
        kind = "HTTP server" if answers else "something"
        return Exposure(name=f"port {sock.port}", kind=kind, base_url=base, port=sock.port,
                        listens=[str(sock)], exposed=True, auth=_auth_of(
                            answers, ("/v1/models", "/")) if answers else "unknown",
                        identified=False, process=owner)
    auth = await _auth(client, server)
    return Exposure(name=server.name, kind=server.kind, base_url=base, port=sock.port,
                    listens=[str(sock)], exposed=True, auth=auth, process=owner,
                    dangers=tuple(await _dangers(client, server, timeout)))


def _process_name(owned: Owned | None) -> str | None:
    if owned is None or owned.process is None:
        return None
    return f"{owned.process.name}, pid {owned.process.pid}"


def _owned(paths: Sequence[Path]) -> list[Owned] | None:
    # The audit names every owner it can see, not only known server programs.
    return owned_listeners(lambda name: True, lambda name: True, paths=paths)


async def audit(servers: Iterable[ServerInfo], policy: EgressPolicy, *,
                listeners: list[Listener] | None = None, read: bool = True,
                timeout: float = 2.0, every_port: bool = False,
                paths: Sequence[Path] = PROC_NET) -> list[Exposure]:
    """One Exposure per server discovery found on this machine (loopback URLs); with
    ``every_port``, also one per other socket listening beyond loopback, probed and named
    by its process; without, unidentified non-loopback listeners on known inference
    ports only (cheap: ``status`` shows it)."""
    owned: list[Owned] | None = None
    if read and listeners is None:
        owned = _owned(paths)
        listeners = None if owned is None else [o.listener for o in owned]
    by_sock = {(o.listener.address, o.listener.port): o for o in owned or []}
    local = [s for s in servers if network_class(parse_url(s.base_url).host or "") == "loopback"]
    found: list[Exposure] = []
    ports: set[int] = set()
    async with make_client(policy, tier="local", purpose="discovery", connect_timeout=timeout,
                           read_timeout=timeout, headers={"origin": PROBE_ORIGIN}) as client:
        auths = await asyncio.gather(*(_auth(client, s) for s in local))
        for server, auth in zip(local, auths, strict=True):
            port = _port(server)
            ports.add(port)
            on_port = [sock for sock in listeners or [] if sock.port == port]
            exposed = None if listeners is None else any(not sock.loopback for sock in on_port)
            owner = next((_process_name(by_sock.get((s.address, s.port))) for s in on_port),
                         None)
            found.append(Exposure(
                name=server.name, kind=server.kind, base_url=server.base_url, port=port,
                listens=sorted({str(sock) for sock in on_port}), exposed=exposed, auth=auth,
                process=owner,
                dangers=tuple(await _dangers(client, server, timeout)) if exposed else ()))
        strays = _strays(listeners or [], ports)
        if every_port:
            found += await asyncio.gather(*(
                _exposed_socket(client, sock, _process_name(by_sock.get((sock.address,
                                                                         sock.port))),
                                _hint(by_sock.get((sock.address, sock.port))), timeout)
                for sock in strays))
        else:
            found += _known_port_strays(strays)
    return found


def _strays(listeners: list[Listener], known: set[int]) -> list[Listener]:
    """Non-loopback listeners on ports no discovered server explains, one per port
    (IPv4 first: a dual-stack server is one server)."""
    picked: dict[int, Listener] = {}
    for sock in sorted(listeners, key=lambda s: ":" in s.address):
        if not sock.loopback and sock.port not in known:
            picked.setdefault(sock.port, sock)
    return [picked[p] for p in sorted(picked)]


def _hint(owned: Owned | None) -> str | None:
    process = owned.process if owned else None
    return server_kind(process.name, process.argv) if process else None


def _known_port_strays(strays: list[Listener]) -> list[Exposure]:
    known = {p: row.kind for row in FINGERPRINTS for p in row.ports}
    return [Exposure(name=f"port {s.port}", kind=f"unidentified ({known[s.port]}'s port)",
                     base_url="", port=s.port, listens=[str(s)], exposed=True, auth="unknown",
                     identified=False) for s in strays if s.port in known]


def exit_code(found: Sequence[Exposure]) -> int:
    """0: nothing identified is exposed; EXIT_EXPOSED: something is; EXIT_UNKNOWN: this
    system does not say which addresses servers listen on."""
    if any(e.exposed and e.identified for e in found):
        return EXIT_EXPOSED
    if any(e.exposed is None for e in found):
        return EXIT_UNKNOWN
    return 0
