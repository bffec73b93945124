"""``run()``: code or an argv, executed by a WebAssembly guest that cannot touch the host.

Isolation by construction: the guest sees only the directories given to it — a private
scratch directory at ``/work`` (also its current directory) holding ``files``, plus each
of ``mounts`` (read-only unless ``"rw"``; an rw mount is a copy, see ``mounts.py``;
``/proc``, ``/sys``, ``/dev`` and the localinfer home are refused) — an environment of
exactly ``env``, no sockets (WASI grants none), no subprocesses. Memory is capped by the
store's limits, CPU by fuel and an epoch deadline, wall-clock time by killing the worker
process, and what ``/work`` and the rw mounts hold by ``disk``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread

from ..errors import UsageError
from .mounts import RwMount, resolve_source
from .pool import WorkerDied, WorkerPool
from .runtimes import get_runtime

LimitError = Literal["timeout", "memory", "fuel", "disk"]
MountMode = Literal["ro", "rw"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY = 256 * 1024 * 1024
DEFAULT_OUTPUT_CAP = 1024 * 1024  # bytes of stdout (and of stderr) kept
DEFAULT_DISK = 256 * 1024 * 1024  # bytes /work and the rw mounts' copies may hold
MAX_WORK_ENTRIES = 10_000  # files and directories in /work
MAX_OUTPUT_FILES_BYTES = 64 * 1024 * 1024
# After the epoch deadline a CPU-bound guest stops by itself; the worker is killed only
# if it has not answered this long after the deadline (a guest blocked in a host call).
KILL_GRACE = 1.0
WORK = "/work"
_RESERVED = {"/", WORK, "."}


@dataclass
class SandboxResult:
    exit_code: int | None  # None when the guest did not exit by itself (a limit, a trap)
    stdout: bytes
    stderr: bytes
    files: dict[str, bytes] = field(default_factory=dict)  # new or changed files in /work
    error: LimitError | None = None
    wall_seconds: float = 0.0
    fuel_used: int | None = None
    memory_bytes: int = 0  # the guest's linear memory at the end
    runtime: str = "python"
    truncated: bool = False  # stdout or stderr was longer than the cap
    trap: str | None = None  # a wasm trap message, if the guest trapped
    worker_pid: int | None = None  # the worker process that ran it (killed if error=timeout)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def describe_limit(self, timeout: float, memory: int, fuel: int | None,
                       disk: int | None = None) -> str:
        if self.error == "timeout":
            return f"sandbox: timed out after {timeout:g} s"
        if self.error == "memory":
            return f"sandbox: out of memory (limit {format_size(memory)})"
        if self.error == "fuel":
            return f"sandbox: out of fuel (limit {fuel})"
        if self.error == "disk":
            return "sandbox: wrote too much into /work and its rw mounts (limit " + (
                f"{format_size(disk)})" if disk else "reached)")
        return ""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """``256M``, ``1G``, ``512KiB`` or a plain byte count → bytes."""
    if isinstance(value, int):
        if value <= 0:
            raise UsageError(f"a memory limit must be positive, not {value}")
        return value
    match = _SIZE.match(value)
    if not match:
        raise UsageError(f"bad size '{value}' (try 256M or 1G)")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1024 ** " kmgt".index(unit or " "))
    if size <= 0:
        raise UsageError(f"a memory limit must be positive, not '{value}'")
    return size


def format_size(n: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n} B"


def _argv(code_or_argv: str | Sequence[str], program: str) -> list[str]:
    if isinstance(code_or_argv, str):
        return [program, "-c", code_or_argv]
    argv = [str(a) for a in code_or_argv]
    if not argv:
        raise UsageError("an empty argv")
    return argv


def _check_name(name: str) -> Path:
    if name.startswith(WORK + "/"):
        name = name[len(WORK) + 1:]
    rel = Path(name)
    if rel.is_absolute() or not rel.parts or any(p in ("..", "") for p in rel.parts):
        raise UsageError(f"a sandbox file name must be relative and stay inside {WORK}: "
                         f"'{name}'")
    return rel


def _check_mount(guest: str) -> str:
    normal = guest.rstrip("/") or "/"
    if not guest.startswith("/") or normal in _RESERVED or ".." in guest.split("/"):
        raise UsageError(f"a mount point must be an absolute guest path other than / and "
                         f"{WORK}: '{guest}'")
    return normal


class Sandbox:
    """A warm pool of sandbox workers. ``run`` is thread-safe; ``arun`` is its async twin.

    >>> with Sandbox() as sb:
    ...     print(sb.run("print(6 * 7)").text)
    42
    """

    def __init__(self, *, warm: int = 1, max_workers: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        workers = max_workers or max(2, min(4, os.cpu_count() or 2))
        self.pool = WorkerPool(warm=warm, max_workers=workers,
                               cache_root=Path(cache_dir) if cache_dir else None)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.close()

    def prewarm(self, runtime: str = "python") -> None:
        self.pool.prewarm(get_runtime(runtime))

    def run(
        self,
        code_or_argv: str | Sequence[str],
        *,
        files: Mapping[str, bytes | str] | None = None,
        mounts: Mapping[str, tuple[str | os.PathLike[str], MountMode] | str | os.PathLike[str]]
        | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        memory: int | str = DEFAULT_MEMORY,
        fuel: int | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | str = b"",
        runtime: str = "python",
        output_cap: int = DEFAULT_OUTPUT_CAP,
        disk: int | str = DEFAULT_DISK,
        _cancel: threading.Event | None = None,
    ) -> SandboxResult:
        """Run ``code_or_argv`` (Python source, or a full argv such as
        ``["python", "-c", "…"]``) in a fresh guest and return what it did."""
        rt = get_runtime(runtime)
        if timeout <= 0:
            raise UsageError("timeout must be positive")
        if fuel is not None and fuel <= 0:
            raise UsageError("fuel must be positive")
        mem = parse_size(memory)
        disk_cap = parse_size(disk)
        argv = _argv(code_or_argv, rt.program)
        protect = (self.pool.cache_root,) if self.pool.cache_root else ()
        shares: list[tuple[Path, str, bool]] = []
        for guest, spec in (mounts or {}).items():
            host, mode = (spec, "ro") if isinstance(spec, (str, os.PathLike)) else spec
            if mode not in ("ro", "rw"):
                raise UsageError(f"mount mode must be 'ro' or 'rw', not '{mode}'")
            shares.append((resolve_source(host, protect=protect), _check_mount(guest),
                           mode == "rw"))
        for key, value in (env or {}).items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise UsageError(f"bad environment variable name or value: {key!r}")
        inputs = {_check_name(n): (v.encode() if isinstance(v, str) else bytes(v))
                  for n, v in (files or {}).items()}
        used = sum(len(v) for v in inputs.values())
        if used > disk_cap:  # /work holds the files, and disk caps what it holds
            raise UsageError(f"the files hold {used} bytes, more than the disk cap "
                             f"({format_size(disk_cap)})")

        tmp = Path(tempfile.mkdtemp(prefix="localinfer-sandbox-"))
        try:
            # Everything the guest can write lives under `scratch`, which `disk` caps.
            scratch, io = tmp / "scratch", tmp / "io"
            work = scratch / "work"
            work.mkdir(parents=True)
            io.mkdir()
            preopens: list[tuple[str, str, bool]] = []
            rw: list[RwMount] = []
            for i, (host_path, guest, writable) in enumerate(shares):
                if not writable:
                    preopens.append((str(host_path), guest, False))
                    continue
                rw.append(RwMount(host_path, scratch / f"mount-{i}"))
                left = MAX_WORK_ENTRIES - len(inputs) - sum(len(m.seen) for m in rw)
                used += rw[-1].copy_in(disk_cap - used, left)
                preopens.append((str(rw[-1].copy), guest, True))
            for rel, data in inputs.items():
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                (work / rel).write_bytes(data)
            stdin_path = None
            if stdin:
                stdin_path = io / "stdin"
                stdin_path.write_bytes(stdin.encode() if isinstance(stdin, str) else stdin)
            job: dict[str, Any] = {
                "argv": argv, "env": sorted((env or {}).items()),
                "preopens": [(str(work), WORK, True), (str(work), ".", True), *preopens],
                "stdin": str(stdin_path) if stdin_path else None,
                "stdout": str(io / "stdout"), "stderr": str(io / "stderr"),
                "memory": mem, "fuel": fuel, "timeout": timeout, "output_cap": output_cap,
            }
            over_disk = False

            def watch() -> bool:
                nonlocal over_disk
                over_disk = _over(scratch, disk_cap)
                return over_disk

            worker = self.pool.acquire(rt, _cancel)
            started = time.monotonic()
            try:
                reply = worker.call(job, started + timeout + KILL_GRACE, _cancel, watch)
            except WorkerDied:
                reply = {"exit_code": None, "error": "trap", "trap": "the sandbox worker died"}
            finally:
                self.pool.release(worker)
            wall = time.monotonic() - started
            if reply is None:  # killed: the hard deadline, too much disk, or cancelled
                self.pool.killed.append(worker.pid)
                reply = {"exit_code": None, "error": "disk" if over_disk else "timeout"}
            elif _over(scratch, disk_cap):  # wrote past the cap between two checks
                reply = {**reply, "error": "disk"}
            if reply.get("error") is None and reply.get("exit_code") is not None:
                for mount in rw:  # ended by itself within every limit: keep its changes
                    mount.copy_back()
            stdout = _read(io / "stdout")
            stderr = _read(io / "stderr")
            error = reply.get("error")
            if error == "trap" or (reply.get("exit_code") not in (0, None)):
                if _looks_out_of_memory(stderr, reply, mem):
                    error = "memory"
                elif error == "trap":
                    error = None
            return SandboxResult(
                exit_code=reply.get("exit_code"), stdout=stdout, stderr=stderr,
                files=_changed_files(work, inputs), error=error, wall_seconds=wall,
                fuel_used=reply.get("fuel_used"), memory_bytes=int(reply.get("memory_bytes", 0)),
                runtime=rt.name, truncated=bool(reply.get("truncated")),
                trap=reply.get("trap"), worker_pid=worker.pid)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    async def arun(self, code_or_argv: str | Sequence[str], **kwargs: Any) -> SandboxResult:
        """``run`` awaited: the call runs on a worker thread; cancelling the awaiting task
        kills the guest's worker process."""
        cancel = threading.Event()
        call = functools.partial(self.run, code_or_argv, _cancel=cancel, **kwargs)
        try:
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancel.set()
            raise


def _over(work: Path, cap: int) -> bool:
    """Whether the guest's scratch directory holds more than ``cap`` bytes (or too many
    entries to keep counting)."""
    total = entries = 0
    stack = [work]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > MAX_WORK_ENTRIES:
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        with contextlib.suppress(OSError):
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if total > cap:
                        return True
        except OSError:
            continue
    return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _looks_out_of_memory(stderr: bytes, reply: Mapping[str, Any], memory: int) -> bool:
    tail = stderr[-2000:]
    if b"MemoryError" in tail or b"memory allocation failed" in tail:
        return True
    # A trap with the linear memory at its cap: an allocation the guest could not handle.
    return reply.get("error") == "trap" and int(reply.get("memory_bytes", 0)) + (1 << 20) > memory


def _changed_files(work: Path, inputs: Mapping[Path, bytes]) -> dict[str, bytes]:
    """Regular files in ``work`` that are new or changed. Symlinks are never followed: the
    guest can plant relative ones (``d -> ../../../etc``) that only the host could resolve."""
    out: dict[str, bytes] = {}
    total = 0
    for root, dirs, names in os.walk(work, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            try:
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or total + st.st_size > MAX_OUTPUT_FILES_BYTES:
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as f:
                    data = f.read(MAX_OUTPUT_FILES_BYTES - total + 1)
            except OSError:
                continue
            rel = path.relative_to(work)
            if inputs.get(rel) != data:
                out[rel.as_posix()] = data
                total += len(data)
    return out


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox behind :func:`run` (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            _default = Sandbox()
            atexit.register(_default.close)
        return _default


def run(code_or_argv: str | Sequence[str], **kwargs: Any) -> SandboxResult:
    """Run code in the process-wide sandbox; see :meth:`Sandbox.run`."""
    return default_sandbox().run(code_or_argv, **kwargs)


async def arun(code_or_argv: str | Sequence[str], **kwargs: Any) -> SandboxResult:
    """The async twin of :func:`run`."""
    return await default_sandbox().arun(code_or_argv, **kwargs)
