"""A one-line progress bar on stderr, drawn only when stderr is a terminal (logs and
pipes get the summary line alone)."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

WIDTH = 24


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, *,
                 force: bool = False, min_interval: float = 0.1) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self._min_interval = min_interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int, current: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < self._min_interval:
            return
        self._last = now
        filled = WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (WIDTH - filled)
        head = f"{self.label} [{bar}] {done}/{total} "
        room = shutil.get_terminal_size((80, 20)).columns - len(head) - 1
        name = current if len(current) <= room else "..." + current[-max(room - 3, 0):]
        self.stream.write("\r" + head + name[:max(room, 0)].ljust(max(room, 0)))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
