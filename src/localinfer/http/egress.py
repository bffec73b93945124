"""What may leave the machine, and the record of what did.

``EgressPolicy`` decides before a connection is opened (offline mode refuses every
non-loopback destination; a strict ledger refuses what it could not record) and is told
after each request what crossed the wire. It records scheme, host, port and path only:
never query strings, headers or bodies.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..errors import EgressBlocked
from ..trace import client_name
from ..types import Tier


class URLLike(Protocol):
    """What the policy reads of a destination (yarl's and httpx's URLs both have it)."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...


NetworkClass = Literal["loopback", "private", "public"]
Purpose = Literal["discovery", "backend", "download"]

_PRIVATE_SUFFIXES = (".local", ".lan", ".home.arpa", ".internal")


def network_class(host: str) -> NetworkClass:
    """Classify a destination without resolving it (no DNS lookup leaves the machine)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "private" if host.endswith(_PRIVATE_SUFFIXES) else "public"
    if ip.is_loopback:
        return "loopback"
    if ip.is_private or ip.is_link_local:
        return "private"
    return "public"


@dataclass(frozen=True)
class EgressRecord:
    time: float
    method: str
    scheme: str
    host: str
    port: int
    path: str
    bytes_sent: int
    bytes_received: int
    status: int | None
    network: NetworkClass
    tier: Tier
    purpose: Purpose
    error: str | None = None
    # device | lan (a host's declared trust) | remote; the gateway token's name, if any.
    trust: str | None = None
    client: str | None = None


Recorder = Callable[[EgressRecord], None]


@dataclass
class EgressPolicy:
    """What may leave, and who hears about what did."""

    offline: bool = False
    recorders: list[Recorder] = field(default_factory=list)
    # Strict: an off-machine request that could not be recorded is not made. Returns
    # why recording is broken, or None (the ledger's ``problem``).
    unrecordable: Callable[[], str | None] | None = None
    # Declared trust of inference hosts by (host, port), filled by hosts.HostPool.
    trust: dict[tuple[str, int], str] = field(default_factory=dict)

    def trust_class(self, host: str, port: int, tier: Tier) -> str:
        if tier == "remote":
            return "remote"
        declared = self.trust.get((host, port))
        if declared is not None:
            return declared
        network = network_class(host)
        return "device" if network == "loopback" else "lan" if network == "private" else "remote"

    def check(self, url: URLLike, network: NetworkClass | None = None) -> None:
        """Refuse a destination before any connection is made; ``network``: its class,
        when the caller has it already (the client computes it once per URL)."""
        if (network or network_class(url.host or "")) == "loopback":
            return
        if self.offline:
            raise EgressBlocked(
                f"offline mode: refused to connect to {url.scheme}://{url.host}:{port_of(url)} "
                "(unset LOCALINFER_OFFLINE or drop --offline to allow it)"
            )
        why = self.unrecordable() if self.unrecordable is not None else None
        if why is not None:
            raise EgressBlocked(
                f"strict ledger: refused to connect to {url.scheme}://{url.host}:{port_of(url)} "
                f"because it could not be recorded: {why}")

    def record(self, rec: EgressRecord) -> None:
        for recorder in self.recorders:
            with contextlib.suppress(Exception):
                recorder(rec)


def port_of(url: URLLike) -> int:
    return url.port or (443 if url.scheme == "https" else 80)



def record(policy: EgressPolicy, tier: Tier, purpose: Purpose, method: str, url: URLLike,
            path: str, sent: int, received: int, status: int | None,
            error: str | None) -> None:
    """One egress record of one request."""
    port, host = port_of(url), url.host or ""
    policy.record(EgressRecord(
        time=time.time(), method=method, scheme=url.scheme, host=host,
        port=port, path=path, bytes_sent=sent, bytes_received=received,
        status=status, network=network_class(host), tier=tier,
        purpose=purpose, error=error,
        trust=policy.trust_class(host, port, tier),
        client=client_name(),
    ))


