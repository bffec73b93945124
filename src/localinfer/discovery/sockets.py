"""This machine's listening TCP sockets and the processes that own them.

Linux: the kernel's sock_diag netlink interface, asked for LISTEN sockets only (it walks
the listening table alone: ~0.05 ms, where reading ``/proc/net/tcp`` walks every
established-connection bucket — 10-20 ms on the 24 GiB dev VM even when empty); else
``/proc/net/tcp`` and ``/proc/net/tcp6`` (state ``0A`` is LISTEN; addresses are hex in
host byte order; the last columns carry the socket's inode). Then
``/proc/<pid>/fd`` links ``socket:[inode]`` back to a process, whose ``comm`` and
``cmdline`` say what it is. Only processes the caller cares about get their fd table
read (``wanted``), so a sweep touches one small file per process, not every fd.
Elsewhere (macOS, BSDs) ``lsof -nP -iTCP -sTCP:LISTEN -F pcn`` gives the same facts.
Sockets of other users' processes have no readable fd table: they stay unowned.

No psutil: it would read the same files, and a sweep needs only the two tables plus
one ``comm`` per process.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
PROC_NET = (PROC / "net" / "tcp", PROC / "net" / "tcp6")
LISTEN = "0A"
LSOF_TIMEOUT = 10.0


@dataclass(frozen=True)
class Listener:
    """One listening socket: its address and port (equality), and the kernel's inode
    and owning uid where the system tells (0 / -1 otherwise)."""

    address: str
    port: int
    inode: int = field(default=0, compare=False)
    uid: int = field(default=-1, compare=False)

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback

    @property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.address).is_unspecified

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else \
            f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class Owned:
    listener: Listener
    process: Process | None


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


# linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
NLMSG_HEADER = struct.Struct("=IHHII")
DIAG_REQUEST = struct.Struct("=BBBBI48x")  # family, protocol, ext, pad, states, id (zero)
DIAG_OWNER = struct.Struct("=II")  # uid, inode at offset 64 of inet_diag_msg


def _diag_dump(family: int) -> list[Listener]:
    """One family's LISTEN sockets from sock_diag (raises OSError where unsupported)."""
    request = DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY,
                               NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    size = 4 if family == socket.AF_INET else 16
    found: list[Listener] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(2.0)
        sock.sendto(header + request, (0, 0))
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, kind = NLMSG_HEADER.unpack_from(data, offset)[:2]
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR or length < NLMSG_HEADER.size:
                    raise OSError("sock_diag refused the request")
                body = data[offset + NLMSG_HEADER.size:offset + length]
                port = int.from_bytes(body[4:6], "big")
                ip = ipaddress.ip_address(body[8:8 + size])
                mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
                uid, inode = DIAG_OWNER.unpack_from(body, 64)
                found.append(Listener(str(mapped or ip), port, inode, uid))
                offset += (length + 3) & ~3
            if not data:
                return found


def netlink_listeners() -> list[Listener] | None:
    """Every LISTEN socket through sock_diag, or None where it is not available."""
    if not hasattr(socket, "AF_NETLINK"):
        return None
    try:
        return _diag_dump(socket.AF_INET) + _diag_dump(socket.AF_INET6)
    except (OSError, ValueError, struct.error):
        return None


def parse_proc_net(text: str) -> list[Listener]:
    """LISTEN sockets of one /proc/net/tcp{,6} table."""
    found: list[Listener] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN:
            continue
        addr, _, port = fields[1].partition(":")
        try:
            uid = int(fields[7]) if len(fields) > 9 else -1
            inode = int(fields[9]) if len(fields) > 9 else 0
            found.append(Listener(_address(addr), int(port, 16), inode, uid))
        except ValueError:
            continue
    return found


def parse_lsof(text: str) -> list[Owned]:
    """``lsof -nP -iTCP -sTCP:LISTEN -F pcn`` output: ``p<pid>``, ``c<command>``, then
    ``n*:11434`` / ``n127.0.0.1:8080`` / ``n[::1]:1234`` lines (``*`` is every address)."""
    found: list[Owned] = []
    process: Process | None = None
    for line in text.splitlines():
        tag, value = line[:1], line[1:]
        if tag == "p" and value.isdigit():
            process = Process(int(value), "")
        elif tag == "c" and process is not None:
            process = Process(process.pid, value)
        elif tag == "n":
            host, _, port = value.rpartition(":")
            host = host.strip("[]")
            host = "0.0.0.0" if host == "*" else host
            try:
                ipaddress.ip_address(host)
                found.append(Owned(Listener(host, int(port)), process))
            except ValueError:
                continue
    return found


def _lsof() -> list[Owned] | None:
    binary = shutil.which("lsof")
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "-nP", "-iTCP", "-sTCP:LISTEN", "-F", "pcn", "+c", "0"],
                              capture_output=True, text=True, timeout=LSOF_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # lsof exits 1 when nothing matches: an empty answer is still an answer.
    return parse_lsof(done.stdout) if done.returncode in (0, 1) else None


def _ps_argv(pid: int) -> tuple[str, ...]:
    """A process's command line where there is no /proc (macOS); split on spaces, which
    is enough to find a module or script name."""
    try:
        done = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                              text=True, timeout=LSOF_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return tuple(done.stdout.split())


def _kernel_listeners(paths: Sequence[Path]) -> list[Listener] | None:
    """Linux's own answer (sock_diag for the default tables, else the /proc/net files),
    or None where the kernel does not give one (no /proc: macOS, BSDs)."""
    if paths is PROC_NET:
        fast = netlink_listeners()
        if fast is not None:
            return list(dict.fromkeys(fast))
    listeners: list[Listener] = []
    readable = False
    for path in paths:
        try:
            listeners += parse_proc_net(path.read_text())
            readable = True
        except OSError:
            continue
    return list(dict.fromkeys(listeners)) if readable else None


def read_listeners(paths: Sequence[Path] = PROC_NET) -> list[Listener] | None:
    """Every listening TCP socket, or None when this system does not say (no /proc,
    no lsof)."""
    found = _kernel_listeners(paths)
    if found is not None:
        return found
    owned = _lsof()
    return None if owned is None else list(dict.fromkeys(o.listener for o in owned))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _argv(pid_dir: Path) -> tuple[str, ...]:
    raw = _read(pid_dir / "cmdline")
    return tuple(a for a in (raw or "").split("\0") if a)


def _socket_inodes(pid_dir: Path) -> set[int]:
    inodes: set[int] = set()
    try:
        entries = os.scandir(pid_dir / "fd")
    except OSError:
        return inodes  # another user's process, or it just exited
    with entries:
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


Wanted = Callable[[str], bool]


def proc_owners(inodes: Iterable[int], wanted: Wanted, *, proc: Path = PROC,
                with_argv: Callable[[str], bool] = lambda name: True) -> dict[int, Process]:
    """inode → owning process, for the processes whose ``comm`` passes ``wanted``
    (the rest are never looked into). ``with_argv(comm)`` says whose command line to
    read."""
    todo = set(inodes)
    owners: dict[int, Process] = {}
    if not todo:
        return owners
    try:
        pids = [e.name for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return owners
    for pid in pids:
        pid_dir = proc / pid
        name = (_read(pid_dir / "comm") or "").rstrip("\n")
        if not name or not wanted(name):
            continue
        mine = _socket_inodes(pid_dir) & todo
        if not mine:
            continue
        process = Process(int(pid), name, _argv(pid_dir) if with_argv(name) else ())
        for inode in mine:
            owners[inode] = process
        todo -= mine
        if not todo:
            break
    return owners


class OwnerCache:
    """The last sweep's answer, kept while the set of listening sockets is unchanged:
    a socket's inode is not reused while it lives, so the same inodes have the same
    owners, and a sweep with nothing new reads only the two /proc/net tables."""

    def __init__(self) -> None:
        self._key: frozenset[int] | None = None
        self._owners: dict[int, Process] = {}

    def owners(self, listeners: Sequence[Listener], wanted: Wanted,
               with_argv: Callable[[str], bool], proc: Path = PROC) -> dict[int, Process]:
        key = frozenset(sock.inode for sock in listeners if sock.inode)
        if key != self._key:
            self._owners = proc_owners(key, wanted, proc=proc, with_argv=with_argv)
            self._key = key
        return self._owners


def readable_owner(sock: Listener) -> bool:
    """Whether this user can see the owner's fd table (its own processes; root: all)."""
    uid = os.geteuid()
    return uid == 0 or sock.uid in (-1, uid)


def owned_listeners(wanted: Wanted, with_argv: Callable[[str], bool], *,
                    cache: OwnerCache | None = None, paths: Sequence[Path] = PROC_NET,
                    proc: Path = PROC,
                    resolve: Callable[[Listener], bool] = readable_owner) -> list[Owned] | None:
    """Listening sockets with their owners where ``wanted(name)`` (else owner None), or
    None when this system does not say. Only sockets passing ``resolve`` are looked
    up (the /proc walk is the costly part)."""
    listeners = _kernel_listeners(paths)
    if listeners is not None:
        owners = (cache or OwnerCache()).owners([s for s in listeners if resolve(s)], wanted,
                                                with_argv, proc)
        return [Owned(sock, owners.get(sock.inode)) for sock in listeners]
    owned = _lsof()
    if owned is None:
        return None
    # lsof names every owner; read command lines only of the ones that need it.
    return [Owned(o.listener, None if o.process is None or not wanted(o.process.name)
                  else Process(o.process.pid, o.process.name,
                               _ps_argv(o.process.pid) if with_argv(o.process.name) else ()))
            for o in owned]
