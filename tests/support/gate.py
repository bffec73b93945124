"""Hold work until enough of it has started, across threads and event loops: streams
made to overlap by an event, not by sleeping in every chunk."""

from __future__ import annotations

import asyncio
import threading

# Only a guard against a hang (a client that never sends the rest): the gate opens
# when the count is reached, long before this on any machine.
GUARD_SECONDS = 60.0


class Gate:
    """Opens once ``expected`` callers have arrived; until then each one waits. Callers
    may run on different event loops (each fake server has its own thread and loop)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self.arrived >= self.expected

    async def wait(self) -> None:
        """Count this caller in; return once ``expected`` callers have."""
        loop, event = asyncio.get_running_loop(), asyncio.Event()
        with self._lock:
            self.arrived += 1
            self._waiters.append((loop, event))
            if self.arrived >= self.expected:
                for waiter_loop, waiter in self._waiters:
                    waiter_loop.call_soon_threadsafe(waiter.set)
                self._waiters.clear()
        await asyncio.wait_for(event.wait(), GUARD_SECONDS)
