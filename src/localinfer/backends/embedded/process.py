"""The parent's handle on one worker process: start it, send commands, receive events.

Two daemon threads per worker read its event pipe and its stderr, so the event loop
never blocks on a pipe; events reach the waiting coroutine through
``loop.call_soon_threadsafe``. The handle is not tied to one event loop: each request
installs its own sink (see ``subscribe``), and events carrying a request id go to that
request's sink only, so several requests can be in flight on one worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Final

WORKER_SCRIPT: Final = Path(__file__).with_name("worker.py")
EXITED: Final = "exit"  # the pseudo-event delivered when the worker's pipe closes

Event = dict[str, Any]


class WorkerProcess:
    def __init__(self, *, debug: bool = False) -> None:
        self._debug = debug
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        # Request id -> its sink; None: the sink for events of no request (loading).
        self._sinks: dict[int | None, tuple[asyncio.AbstractEventLoop,
                                            asyncio.Queue[Event]]] = {}
        self._exited = False
        # When the worker last said anything (monotonic): the watchdog's measure of a hang,
        # since a request queued behind others may rightly hear nothing for a while.
        self.last_event_at = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=True,
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._stdin: IO[bytes] = self._proc.stdin
        threading.Thread(target=self._read_events, args=(self._proc.stdout,),
                         name=f"embedded-events-{self.pid}", daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self._proc.stderr,),
                         name=f"embedded-stderr-{self.pid}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        # Not Popen.poll(): it answers None while the reader thread sits in wait().
        return not self._exited

    def subscribe(self, loop: asyncio.AbstractEventLoop,
                  rid: int | None = None) -> asyncio.Queue[Event]:
        """A fresh queue that receives, from now on, the events of request ``rid``
        (None: those of no request), and the exit."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._sinks[rid] = (loop, queue)
        if self._exited:  # the pipe closed before we subscribed
            queue.put_nowait({"ev": EXITED})
        return queue

    def unsubscribe(self, rid: int | None) -> None:
        self._sinks.pop(rid, None)

    def send(self, command: Event) -> None:
        try:
            self._stdin.write(json.dumps(command, separators=(",", ":")).encode() + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the worker is gone; its reader thread reports the exit

    def kill(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        with contextlib.suppress(OSError):
            self._stdin.close()

    def exit_reason(self) -> str:
        code: int | None = None
        if self._exited:  # dead; the reader thread may still be reaping it
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=1)
        if code is None:
            how = "stopped responding"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        last = next((line for line in reversed(self._stderr_tail) if line.strip()), "")
        return f"{how}: {last}" if last else how

    # -- threads -----------------------------------------------------------------------

    def _deliver(self, event: Event) -> None:
        if event["ev"] == EXITED:
            sinks = list(self._sinks.values())
        else:
            sink = self._sinks.get(event.get("id"))
            sinks = [sink] if sink is not None else []
        for loop, queue in sinks:
            # RuntimeError: that request's loop is closed; nobody is listening.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, event)

    def _read_events(self, pipe: IO[bytes]) -> None:
        for line in pipe:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.last_event_at = time.monotonic()
            self._deliver(event)
        # The kernel closes the pipe as the process dies: EOF means it is gone.
        self._exited = True
        self._proc.wait()  # reap it here, off the event loop
        self._deliver({"ev": EXITED})

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(line)
            if self._debug:
                print(f"[embedded {self.pid}] {line}", file=sys.stderr, flush=True)
