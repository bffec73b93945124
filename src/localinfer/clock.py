"""Time as state files and reports show it."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


def iso_time(t: float) -> str:
    """Local time with its UTC offset, e.g. 2026-12-01T09:30:00+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))
