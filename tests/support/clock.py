"""A clock a test moves by hand, for the code that takes one (``localinfer.clock.Clock``:
consent expiry, host cooldowns): time passes when the test says so, never by waiting."""

from __future__ import annotations


class ManualClock:
    """Callable like ``time.monotonic`` or ``time.time``; ``advance`` or set ``now``."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
