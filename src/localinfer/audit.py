"""What this machine exposes: for each inference server found here, whether it listens
beyond loopback and whether it answers without authentication.

Listening sockets come from ``/proc/net/tcp`` and ``/proc/net/tcp6`` (Linux; state
``0A`` is LISTEN, addresses are little-endian hex), else from ``lsof`` where it is
installed (macOS, BSDs). Without either they are "unknown" rather than guessed.
Whether a server needs a password is asked of it over loopback only (one ``GET`` of
its model list, without credentials): the audit never probes an address off this
machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from .discovery.fingerprints import FINGERPRINTS
from .http import EgressPolicy, make_client, network_class
from .types import ServerInfo

PROC_NET = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN = "0A"
EXIT_EXPOSED = 20
EXIT_UNKNOWN = 21

Auth = Literal["none", "required", "unknown"]


@dataclass(frozen=True)
class Listener:
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else \
            f"{self.address}:{self.port}"


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_proc_net(text: str) -> list[Listener]:
    """LISTEN sockets of one /proc/net/tcp{,6} table."""
    found: list[Listener] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN:
            continue
        addr, _, port = fields[1].partition(":")
        try:
            found.append(Listener(_address(addr), int(port, 16)))
        except ValueError:
            continue
    return found


def parse_lsof(text: str) -> list[Listener]:
    """``lsof -nP -iTCP -sTCP:LISTEN -F n`` output: ``n*:11434``, ``n127.0.0.1:8080``,
    ``n[::1]:1234`` lines (``*`` is every address)."""
    found: list[Listener] = []
    for line in text.splitlines():
        if not line.startswith("n"):
            continue
        host, _, port = line[1:].rpartition(":")
        host = host.strip("[]")
        host = "0.0.0.0" if host == "*" else host
        try:
            ipaddress.ip_address(host)
            found.append(Listener(host, int(port)))
        except ValueError:
            continue
    return found


def _lsof() -> list[Listener] | None:
    binary = shutil.which("lsof")
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "-nP", "-iTCP", "-sTCP:LISTEN", "-F", "n"],
                              capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # lsof exits 1 when nothing matches: an empty answer is still an answer.
    return parse_lsof(done.stdout) if done.returncode in (0, 1) else None


def read_listeners(paths: Sequence[Path] = PROC_NET) -> list[Listener] | None:
    """Every listening TCP socket, or None when this system does not say (no /proc,
    no lsof)."""
    listeners: list[Listener] = []
    readable = False
    for path in paths:
        try:
            listeners += parse_proc_net(path.read_text())
            readable = True
        except OSError:
            continue
    return list(dict.fromkeys(listeners)) if readable else _lsof()


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

    @property
    def message(self) -> str:
        if self.exposed is None:
            return (f"{self.kind} at {self.base_url}: cannot tell which addresses it listens "
                    "on here (no /proc/net/tcp, no lsof)")
        where = ", ".join(self.listens) or self.base_url
        if not self.exposed:
            return f"{self.kind} on {where}: this machine only"
        if not self.identified:
            return (f"something listens on {where} (a known inference port) beyond this "
                    "machine; not probed")
        if self.auth == "none":
            return (f"{self.kind} on {where} answers anyone on your network without a "
                    "password")
        if self.auth == "required":
            return f"{self.kind} on {where} is reachable from your network; it asks for a token"
        return f"{self.kind} on {where} is reachable from your network"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "base_url": self.base_url,
                "port": self.port, "listens": self.listens,
                "exposed": "unknown" if self.exposed is None else self.exposed,
                "auth": self.auth, "identified": self.identified, "message": self.message}


async def _auth(client: httpx.AsyncClient, server: ServerInfo) -> Auth:
    try:
        response = await client.get(server.api_base.rstrip("/") + "/models")
    except httpx.HTTPError:
        return "unknown"
    if response.status_code in (401, 403):
        return "required"
    return "none" if response.status_code < 400 else "unknown"


def _port(server: ServerInfo) -> int | None:
    url = httpx.URL(server.base_url)
    return url.port or (443 if url.scheme == "https" else 80)


async def audit(servers: Iterable[ServerInfo], policy: EgressPolicy, *,
                listeners: list[Listener] | None = None, read: bool = True,
                timeout: float = 2.0) -> list[Exposure]:
    """One Exposure per server on this machine (loopback URLs), plus unidentified
    non-loopback listeners on the known inference ports."""
    if read and listeners is None:
        listeners = read_listeners()
    local = [s for s in servers if network_class(httpx.URL(s.base_url).host) == "loopback"]
    async with make_client(policy, tier="local", purpose="discovery", connect_timeout=timeout,
                           read_timeout=timeout) as client:
        auths = await asyncio.gather(*(_auth(client, s) for s in local))
    found: list[Exposure] = []
    ports: set[int] = set()
    for server, auth in zip(local, auths, strict=True):
        port = _port(server) or 0
        ports.add(port)
        on_port = [sock for sock in listeners or [] if sock.port == port]
        exposed = None if listeners is None else any(not sock.loopback for sock in on_port)
        found.append(Exposure(name=server.name, kind=server.kind, base_url=server.base_url,
                              port=port, listens=sorted({str(sock) for sock in on_port}),
                              exposed=exposed, auth=auth))
    known = {p: row.kind for row in FINGERPRINTS for p in row.ports}
    strays: dict[int, list[str]] = {}
    for lsn in listeners or []:
        if lsn.port in known and lsn.port not in ports and not lsn.loopback:
            strays.setdefault(lsn.port, []).append(str(lsn))
    for port, where in sorted(strays.items()):
        found.append(Exposure(name=f"port {port}", kind=f"unidentified ({known[port]}'s port)",
                              base_url="", port=port, listens=sorted(set(where)),
                              exposed=True, auth="unknown", identified=False))
    return found


def exit_code(found: Sequence[Exposure]) -> int:
    """0: nothing identified is exposed; EXIT_EXPOSED: something is; EXIT_UNKNOWN: this
    system does not say which addresses servers listen on."""
    if any(e.exposed and e.identified for e in found):
        return EXIT_EXPOSED
    if any(e.exposed is None for e in found):
        return EXIT_UNKNOWN
    return 0
