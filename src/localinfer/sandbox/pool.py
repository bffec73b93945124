"""Worker processes that each hold one compiled guest module, and a small warm pool.

Each call runs in a worker *process* so the wall-clock deadline is hard: at the deadline
the worker is killed (a guest blocked in a host call — ``time.sleep`` — cannot be
interrupted any other way) and replaced in the background.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SandboxUnavailable
from .runtimes import Runtime, cwasm_path, verified_path

log = logging.getLogger("localinfer")

WORKER_SCRIPT = Path(__file__).resolve().with_name("_worker.py")
# A first compile of the CPython module takes 25-40 s on 2 busy cores; give it room.
READY_TIMEOUT = 600.0
WATCH_SECONDS = 0.25
# The worker's whole environment (it runs `python -I`, by absolute path, and needs
# nothing else): no HOME, no PATH, no *_API_KEY, no token, no LOCALINFER_* setting —
# nothing a guest could learn if a mount ever reached /proc/<worker>/environ.
WORKER_ENV = frozenset({"LANG", "LC_ALL", "LC_CTYPE"})


class WorkerDied(Exception):
    pass


class Worker:
    """One worker process for one runtime. Not thread-safe: one call at a time."""

    def __init__(self, runtime: Runtime, cache_root: Path | None) -> None:
        self.runtime = runtime
        wasm = verified_path(runtime)
        cwasm = cwasm_path(runtime, cache_root)
        if not cwasm.exists():
            log.info("sandbox: compiling the %s runtime once (%.1f MB .wasm%s), cached at %s",
                     runtime.name, runtime.size / 1e6,
                     "; 20-40 s on 2 cores" if runtime.size > 10_000_000 else "", cwasm)
        env = {k: v for k, v in os.environ.items() if k in WORKER_ENV}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-u", str(WORKER_SCRIPT), runtime.name, str(wasm), str(cwasm)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if os.environ.get("LOCALINFER_SANDBOX_DEBUG") else subprocess.DEVNULL,
            env=env, close_fds=True)
        self._buf = b""
        self.ready_info: dict[str, Any] | None = None
        self.calls = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        if self.ready_info is None:
            info = self._read_line(time.monotonic() + timeout, None)
            if info is None or not info.get("ready"):
                self.kill()
                raise SandboxUnavailable(
                    f"the {self.runtime.name} sandbox worker did not start "
                    "(set LOCALINFER_SANDBOX_DEBUG=1 to see its stderr)")
            self.ready_info = info
            if info.get("compiled"):
                log.info("sandbox: compiled the %s runtime in %.1f s (%.1f MB cached)",
                         self.runtime.name, info.get("compile_seconds", 0.0),
                         info.get("cwasm_bytes", 0) / 1e6)
        return self.ready_info

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, job: dict[str, Any], deadline: float, cancel: threading.Event | None,
             watch: Callable[[], bool] | None = None) -> dict[str, Any] | None:
        """Send one job; the result, or None when the deadline passed, ``cancel`` was set
        or ``watch()`` (polled every quarter second) said stop: the worker is then killed."""
        assert self.proc.stdin is not None
        self.calls += 1
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerDied(str(exc)) from exc
        result = self._read_line(deadline, cancel, watch)
        if result is None:
            self.kill()
        return result

    def _read_line(self, deadline: float, cancel: threading.Event | None,
                   watch: Callable[[], bool] | None = None) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        next_watch = time.monotonic() + WATCH_SECONDS
        while b"\n" not in self._buf:
            if cancel is not None and cancel.is_set():
                return None
            if watch is not None and time.monotonic() >= next_watch:
                if watch():
                    return None
                next_watch = time.monotonic() + WATCH_SECONDS
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 0.05))
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                self.kill()
                raise WorkerDied(f"sandbox worker {self.pid} exited")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()

    def stop(self) -> None:
        """Close stdin (the worker exits on EOF); kill if it lingers."""
        with contextlib.suppress(Exception):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        self.kill()


class WorkerPool:
    """Idle workers per runtime (``warm`` of each kept), at most ``max_workers`` busy."""

    def __init__(self, *, warm: int = 1, max_workers: int = 4,
                 cache_root: Path | None = None) -> None:
        self.warm = warm
        self.max_workers = max(1, max_workers)
        self.cache_root = cache_root
        self._idle: dict[str, list[Worker]] = {}
        self._busy = 0
        self._starting: dict[str, int] = {}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.killed: list[int] = []  # pids of workers killed at a deadline or on cancel

    def acquire(self, runtime: Runtime, cancel: threading.Event | None = None) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxUnavailable("the sandbox was closed")
                idle = self._idle.setdefault(runtime.name, [])
                while idle:
                    worker = idle.pop()
                    if worker.alive():
                        self._busy += 1
                        return worker
                    worker.kill()
                if self._busy + self._total_idle() < self.max_workers:
                    self._busy += 1
                    break
                evicted = self._evict_idle_other_than(runtime.name)
                if evicted is not None:
                    evicted.kill()
                    continue
                self._cond.wait(0.1)
                if cancel is not None and cancel.is_set():
                    raise SandboxUnavailable("cancelled")
        try:
            worker = Worker(runtime, self.cache_root)
            worker.wait_ready()
        except BaseException:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()
            raise
        return worker

    def release(self, worker: Worker) -> None:
        runtime = worker.runtime
        kept = False
        with self._cond:
            self._busy -= 1
            idle = self._idle.setdefault(runtime.name, [])
            if worker.alive() and not self._closed and len(idle) < self.warm:
                idle.append(worker)
                kept = True
            self._cond.notify_all()
        if not kept:
            worker.stop()
        self._replenish(runtime)

    def prewarm(self, runtime: Runtime) -> None:
        """Start ``warm`` idle workers for ``runtime`` in the background."""
        self._replenish(runtime)

    def _replenish(self, runtime: Runtime | None) -> None:
        if runtime is None or self.warm == 0:
            return
        with self._cond:
            have = len(self._idle.get(runtime.name, [])) + self._starting.get(runtime.name, 0)
            if self._closed or have >= self.warm or (
                    self._busy + self._total_idle() + sum(self._starting.values())
                    >= self.max_workers):
                return
            self._starting[runtime.name] = self._starting.get(runtime.name, 0) + 1
        thread = threading.Thread(target=self._start_idle, args=(runtime,), daemon=True,
                                  name="localinfer-sandbox-warm")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _start_idle(self, runtime: Runtime) -> None:
        worker: Worker | None = None
        try:
            worker = Worker(runtime, self.cache_root)
            worker.wait_ready()
        except Exception:
            log.debug("sandbox: a warm worker failed to start", exc_info=True)
            worker = None
        with self._cond:
            self._starting[runtime.name] -= 1
            if worker is not None and not self._closed:
                self._idle.setdefault(runtime.name, []).append(worker)
                worker = None
            self._cond.notify_all()
        if worker is not None:
            worker.kill()

    def _total_idle(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def _evict_idle_other_than(self, name: str) -> Worker | None:
        for other, workers in self._idle.items():
            if other != name and workers:
                return workers.pop()
        return None

    def pids(self) -> list[int]:
        with self._cond:
            return [w.pid for ws in self._idle.values() for w in ws]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=READY_TIMEOUT)
        for worker in workers:
            worker.stop()
