"""Whether a host may take requests: passive marking down, exponential cooldown, and
an active probe once the cooldown ends.

A refused connection, a timeout, a 5xx or a dropped stream marks a host down for 1 s,
doubling on each failure in a row up to 60 s. While it cools down no request is sent
there, so no request waits on a dead host's timeout twice; when the cooldown ends one
cheap probe (``GET /v1/models``) decides whether it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..errors import BackendError, BackendTimeout, ContextLengthExceeded, ModelLoading

COOLDOWN_FIRST = 1.0
COOLDOWN_MAX = 60.0
# Weight of the newest sample in the latency average.
LATENCY_ALPHA = 0.3

State = Literal["up", "cooling", "probe"]


def marks_down(exc: BackendError) -> bool:
    """Failures that say the host (not the request) is the problem."""
    # Too long a prompt is the request's fault; a model still loading, not a sick host.
    if isinstance(exc, ContextLengthExceeded | ModelLoading):
        return False
    if isinstance(exc, BackendTimeout):
        return True
    return exc.status is None or exc.status >= 500


@dataclass
class Health:
    clock: Callable[[], float] = time.monotonic
    outstanding: int = 0
    failures: int = 0
    cooldown: float = 0.0
    down_until: float = 0.0
    latency: float | None = None  # seconds to the first token (or answer), averaged
    last_error: str | None = None
    served: int = 0
    _probing: bool = field(default=False, repr=False)

    def state(self) -> State:
        if self.down_until == 0.0:
            return "up"
        return "cooling" if self.clock() < self.down_until else "probe"

    def retry_in(self) -> float:
        return max(0.0, self.down_until - self.clock()) if self.down_until else 0.0

    def begin(self) -> None:
        self.outstanding += 1

    def end(self) -> None:
        self.outstanding = max(0, self.outstanding - 1)

    def succeeded(self, seconds: float | None = None) -> None:
        self.failures, self.cooldown, self.down_until = 0, 0.0, 0.0
        self.last_error = None
        self.served += 1
        if seconds is not None:
            self.latency = seconds if self.latency is None else (
                LATENCY_ALPHA * seconds + (1 - LATENCY_ALPHA) * self.latency)

    def failed(self, why: str) -> None:
        self.failures += 1
        self.cooldown = COOLDOWN_FIRST if self.cooldown == 0.0 else min(
            COOLDOWN_MAX, self.cooldown * 2)
        self.down_until = self.clock() + self.cooldown
        self.last_error = why

    def recovered(self) -> None:
        """The active probe answered: back in rotation. The cooldown is kept until a
        request succeeds, so a host that answers probes but fails requests backs off."""
        self.down_until = 0.0

    def probe_failed(self, why: str) -> None:
        self.failed(why)

    def claim_probe(self) -> bool:
        """Only one caller probes a host whose cooldown ended; the rest skip it."""
        if self._probing or self.state() != "probe":
            return False
        self._probing = True
        return True

    def release_probe(self) -> None:
        self._probing = False

    def to_json(self) -> dict[str, object]:
        return {"state": self.state(), "outstanding": self.outstanding,
                "failures": self.failures, "retry_in_s": round(self.retry_in(), 1),
                "latency_ms": None if self.latency is None else round(self.latency * 1000, 1),
                "served": self.served, "last_error": self.last_error}
