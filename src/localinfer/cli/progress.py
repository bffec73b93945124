"""The one progress bar of the command line. The library only reports progress
through callbacks (``Progress`` events for assets, ``(done, total, current)`` for an
index); this draws them on stderr: a live bar on a terminal, plain phase lines (or
nothing) when stderr is a pipe or a log."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from ..assets.progress import Progress, format_bytes, format_duration


class ProgressBar:
    """Draws Progress events on stderr: a live bar on a terminal, phase lines otherwise."""

    WIDTH = 28

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self._out = stream or sys.stderr
        self._live = self._out.isatty() if live is None else live
        self._phase: str | None = None
        self._drawn = False
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        if p.phase == "plan":
            self._end_line()
            print(p.detail or "", file=self._out, flush=True)
            return
        if p.phase != self._phase:
            self._end_line()
            self._phase = p.phase
            if not self._live and p.phase != "done":
                print(f"{p.phase}: {p.detail or ''} ({format_bytes(p.total)})".rstrip(),
                      file=self._out, flush=True)
        if p.phase == "done":
            return
        if self._live:
            self._out.write("\r" + self.render(p))
            self._out.flush()
            self._drawn = True

    def render(self, p: Progress) -> str:
        frac = p.fraction
        filled = int(self.WIDTH * frac) if frac is not None else 0
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        pct = f"{frac * 100:5.1f}%" if frac is not None else "  ?  "
        speed = f"{format_bytes(p.speed_bps)}/s" if p.speed_bps else "-"
        eta = format_duration(p.eta_s) if p.eta_s is not None else "-"
        label = p.phase if p.phase != "ollama" else (p.detail or "ollama")[:24]
        return (f"{label:>10} [{bar}] {pct} {format_bytes(p.done)}/{format_bytes(p.total)} "
                f"{speed} ETA {eta}   ")

    @property
    def live(self) -> bool:
        return self._live

    def draw_items(self, label: str, done: int, total: int, current: str) -> None:
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        head = f"{label:>10} [{bar}] {done}/{total} "
        room = max(shutil.get_terminal_size((80, 20)).columns - len(head) - 1, 0)
        name = current if len(current) <= room else "..." + current[-max(room - 3, 0):]
        self._out.write("\r" + head + name[:room].ljust(room))
        self._out.flush()
        self._drawn = True

    def _end_line(self) -> None:
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False

    def close(self) -> None:
        self._end_line()




class ItemsBar:
    """An index's ``(done, total, current)`` callback, drawn by the same bar: files
    done of total and the file being read. Silent off a terminal (the command prints
    its summary line anyway)."""

    MIN_INTERVAL = 0.1

    def __init__(self, label: str, stream: TextIO | None = None, *,
                 live: bool | None = None) -> None:
        self.label = label
        self._bar = ProgressBar(stream, live)
        self._last = 0.0

    def __call__(self, done: int, total: int, current: str) -> None:
        if not self._bar.live:
            return
        now = time.monotonic()
        if done < total and now - self._last < self.MIN_INTERVAL:
            return
        self._last = now
        self._bar.draw_items(self.label, done, total, current)

    def close(self) -> None:
        self._bar.close()
