"""Inference servers on any port of this machine: the listening sockets owned by a known
server program (processes.py), as loopback addresses to probe.

A socket bound to a wildcard or loopback address is reached over loopback (IPv4 or
IPv6, as it listens); one bound only to another address of this machine is left to
``localinfer audit`` (reaching it would leave the loopback interface).
"""

from __future__ import annotations

from dataclasses import dataclass

from .processes import could_match as _could_match
from .processes import needs_argv, server_kind
from .sockets import Listener, Owned, OwnerCache, owned_listeners, readable_owner

_CACHE = OwnerCache()


@dataclass(frozen=True)
class Seen:
    host: str  # the loopback address to probe it on
    port: int
    kind: str  # what its program says it is (a hint: the answers decide)
    process: str
    pid: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _loopback_host(owned: Owned) -> str | None:
    sock = owned.listener
    if not (sock.loopback or sock.wildcard):
        return None
    return "::1" if ":" in sock.address else "127.0.0.1"


def seen(found: list[Owned] | None) -> list[Seen]:
    """The sockets of known server programs among ``found``, once per (host, port)."""
    out: dict[tuple[str, int], Seen] = {}
    for owned in found or []:
        process = owned.process
        host = _loopback_host(owned)
        if process is None or host is None:
            continue
        kind = server_kind(process.name, process.argv)
        if kind is None:
            continue
        # A dual-stack server listens on 0.0.0.0 and ::: probe it once, over IPv4.
        if host == "::1" and (("127.0.0.1", owned.listener.port) in out):
            continue
        out.setdefault((host, owned.listener.port),
                       Seen(host, owned.listener.port, kind, process.name, process.pid))
    return [s for (h, p), s in out.items() if not (h == "::1" and ("127.0.0.1", p) in out)]


def _worth_resolving(sock: Listener) -> bool:
    # Reachable over loopback and owned by a process whose fds this user may read.
    return (sock.loopback or sock.wildcard) and readable_owner(sock)


def servers_here() -> list[Seen]:
    """Known server programs' listening sockets on this machine (empty when the system
    does not say)."""
    return seen(owned_listeners(_could_match, needs_argv, cache=_CACHE,
                                resolve=_worth_resolving))
