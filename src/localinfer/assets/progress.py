"""The one progress shape for a first load, and the arithmetic behind speed and ETA.

Every long asset step (plan, download, extract, verify, an Ollama pull) reports a
``Progress`` to one ``ProgressCallback``; the CLI draws a bar from it and the gateway
can forward it as events. Phases:

- ``plan``: before any byte moves; ``total`` is the expected size, ``eta_s`` the estimate.
- ``download`` / ``extract`` / ``verify``: bytes done of total.
- ``ollama``: an Ollama server's own pull progress (``detail`` holds its status line).
- ``done``: the file is in place (``detail`` holds its path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    phase: str
    done: int
    total: int | None
    eta_s: float | None = None
    speed_bps: float | None = None
    detail: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressCallback = Callable[[Progress], None]


class Meter:
    """Speed as an exponential moving average over time, so one stall or burst does
    not swing the ETA; reports at most every ``interval`` seconds (plus the last one)."""

    def __init__(self, phase: str, total: int | None, callback: ProgressCallback | None, *,
                 start: int = 0, interval: float = 0.2, detail: str | None = None) -> None:
        self.phase = phase
        self.total = total
        self.done = start
        self._callback = callback
        self._interval = interval
        self._detail = detail
        self._t0 = time.monotonic()
        self._last_t = self._t0
        self._last_done = start
        self._last_emit = 0.0
        self._speed: float | None = None
        self.transferred = 0

    @property
    def speed_bps(self) -> float | None:
        return self._speed

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def advance(self, n: int) -> None:
        self.done += n
        self.transferred += n
        now = time.monotonic()
        dt = now - self._last_t
        if dt >= 0.1:
            inst = (self.done - self._last_done) / dt
            self._speed = inst if self._speed is None else 0.7 * self._speed + 0.3 * inst
            self._last_t, self._last_done = now, self.done
        if now - self._last_emit >= self._interval:
            self._last_emit = now
            self.emit()

    def eta(self) -> float | None:
        if self.total is None or not self._speed:
            return None
        return max(0.0, (self.total - self.done) / self._speed)

    def emit(self) -> None:
        if self._callback is not None:
            self._callback(Progress(self.phase, self.done, self.total, self.eta(),
                                    self._speed, self._detail))

    def finish(self) -> None:
        if self.elapsed > 0 and self.transferred:
            self._speed = self.transferred / self.elapsed
        if self._callback is not None:
            self._callback(Progress(self.phase, self.done, self.total, 0.0, self._speed,
                                    self._detail))


def format_bytes(n: float | None) -> str:
    """Decimal units, as disk and network vendors (and Hugging Face pages) count."""
    if n is None:
        return "unknown size"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns


def eta_phrase(seconds: float | None) -> str:
    """'about 2 min 05 s' / 'under a second' / 'unknown time', for sentences."""
    if seconds is None or seconds < 0.5:
        return format_duration(seconds)
    return "about " + format_duration(seconds)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown time"
    s = round(seconds)
    if s < 1:
        return "under a second"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
