"""Read an `strace -f -k -e trace=connect,sendto,sendmsg,sendmmsg` log for anything
that tried to leave the machine or to resolve a name (helpers, no tests here).

Counted, from any process and any library, with no exemption:
- a connect/sendto to an IPv4/IPv6 address that is not loopback;
- anything to port 53 (a DNS query, even to a resolver on loopback);
- a connect to a local name-service socket (nscd, systemd-resolved, avahi/mDNS):
  glibc asks those first, so a lookup that never reaches port 53 still shows there;
  except nscd asked for a user or group (``getpwuid`` and the like in the stack: the
  sandbox worker, without ``HOME``, looks its user up), which is no host lookup.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

# connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("1.2.3.4")}, 16)
_CALL = re.compile(r'(?:connect|sendto|sendmsg|sendmmsg)\(\d+, [^\n]*?'
                   r'\{sa_family=(AF_INET6?|AF_UNIX)[^}]*\}')
_PORT = re.compile(r'(?:sin6?_port)=htons\((\d+)\)')
_ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
_PATH = re.compile(r'sun_path="([^"]+)"')
NAME_SERVICE_SOCKETS = ("/nscd/socket", "/systemd/resolve/", "/avahi-daemon/socket")
USER_DATABASE_CALLS = ("(getpw", "(getgr", "(initgroups", "(getspnam")
# Each of these silences ONNX Runtime's telemetry on its own (its Privacy.md and
# binary): a proof that ran with one of them set would prove nothing about our switch.
TELEMETRY_SILENCERS = ("ORT_DISABLE_TELEMETRY", "ORT_RUNNING_UNIT_TESTS", "CI", "TF_BUILD",
                       "GITHUB_ACTIONS")


@dataclass(frozen=True)
class Attempt:
    where: str  # the address, port or socket path
    excerpt: str  # the strace line and its native stack: who tried


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


def egress_attempts(trace: str) -> list[Attempt]:
    found = []
    for match in _CALL.finditer(trace):
        call = match.group(0)
        excerpt = _with_stack(trace, match.start())
        where = _verdict(match.group(1), call, excerpt)
        if where is not None:
            found.append(Attempt(where, excerpt))
    return found


def _with_stack(trace: str, start: int) -> str:
    """The call's line and the native frames strace -k printed under it."""
    lines = trace[trace.rfind("\n", 0, start) + 1:].splitlines()
    stack = itertools.takewhile(lambda line: line.startswith(" > "), lines[1:40])
    return "\n".join([lines[0], *stack])


def _verdict(family: str, call: str, excerpt: str) -> str | None:
    """What this one call reached for, or None when it stays on the machine."""
    if family == "AF_UNIX":
        path = _PATH.search(call)
        if path is None or not any(s in path.group(1) for s in NAME_SERVICE_SOCKETS):
            return None
        users = "/nscd/" in path.group(1) and any(c in excerpt for c in USER_DATABASE_CALLS)
        return None if users else path.group(1)
    port = _PORT.search(call)
    address = _ADDRESS.search(call)
    host = (address.group(1) or address.group(2)) if address else "?"
    if port is not None and port.group(1) == "53":
        return f"{host}:53 (DNS)"
    return None if is_loopback(host) else host


def without_telemetry_silencers(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in TELEMETRY_SILENCERS}


def report(attempts: list[Attempt], limit: int = 2) -> str:
    """The first few attempts with their stacks, for an assertion message."""
    return "\n\n".join(f"{a.where}:\n{a.excerpt}" for a in attempts[:limit])
