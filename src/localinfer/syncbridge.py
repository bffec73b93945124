"""The one way synchronous code runs localinfer's coroutines: an event loop on a
*daemon* thread.

Daemon, because a synchronous facade the user forgot to close must never keep the
interpreter alive at exit (a plain ``Client()`` in a script is the first thing a new
user writes). ``Client`` owns one ``LoopThread``; one-shot helpers (``run_sync``) share
a process-wide one, so every sync entry point drives coroutines the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

T = TypeVar("T")

# How long stop() waits for the loop's own clean-up (closing streams, connections).
STOP_GRACE: Final = 10.0


class LoopThread:
    """An asyncio event loop running forever on a daemon thread until ``stop()``."""

    def __init__(self, name: str = "localinfer-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._loop.is_closed()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(self._loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self._loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True))
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def submit(self, fn: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start ``fn()`` on the loop; a concurrent future of its result."""
        async def run() -> T:
            return await fn()

        if not self.running:
            raise RuntimeError("the event loop thread has stopped (the client was closed)")
        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``fn()`` on the loop and wait for its result (from any other thread)."""
        if self.on_loop_thread():
            raise RuntimeError("LoopThread.call from its own loop would deadlock; await instead")
        future = self.submit(fn)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def iterate(self, open_stream: Callable[[], Awaitable[AsyncIterator[T]]]) -> Iterator[T]:
        """Drive an async stream in one task on the loop and hand items over a queue, so
        cancellation scopes stay in one task; closing the iterator cancels the task and
        waits for its clean-up (so generation has stopped when ``close()`` returns)."""
        items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        finished = threading.Event()

        async def pump() -> None:
            try:
                stream = await open_stream()
                try:
                    async for item in stream:
                        items.put(("item", item))
                finally:
                    aclose = getattr(stream, "aclose", None)  # plain iterators have none
                    if aclose is not None:
                        await aclose()
                items.put(("end", None))
            except Exception as exc:
                items.put(("error", exc))
            finally:
                finished.set()

        future = self.submit(pump)
        try:
            while True:
                kind, value = items.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            if not future.done():
                future.cancel()
            finished.wait(timeout=30)

    def stop(self, timeout: float = STOP_GRACE) -> None:
        """Stop the loop (its pending tasks are cancelled and awaited) and join the thread."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.on_loop_thread():
            self._thread.join(timeout)


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """The process-wide loop thread for one-shot sync calls (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = LoopThread("localinfer-sync")
        return _shared


def run_sync(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function to completion from synchronous code, even code that is
    itself called from inside a running event loop (it never re-enters that loop)."""
    return shared_loop().call(fn)
