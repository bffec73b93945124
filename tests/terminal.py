"""Drive a CLI on a pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import time


def _controlling_terminal() -> None:
    # A new session whose controlling terminal is the pty, so Ctrl-C (\x03) typed into
    # it raises SIGINT in the foreground process group, as on a real terminal.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A child process on a pseudo-terminal, read until an expected text appears."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.fd, child = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, env=env,
                                     close_fds=True, preexec_fn=_controlling_terminal)
        os.close(child)
        self.output = ""

    def expect(self, text: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            self._read(deadline, f"never saw {text!r}", f"exited before {text!r}")
        start = self.output.index(text) + len(text)
        seen, self.output = self.output[:start], self.output[start:]
        return seen

    def expect_more(self, timeout: float = 90.0) -> str:
        """Whatever printable output comes next (at least one visible character)."""
        deadline = time.monotonic() + timeout
        while not self.output.strip():
            self._read(deadline, "no more output", "exited without more output")
        seen, self.output = self.output, ""
        return seen

    def _read(self, deadline: float, never: str, exited: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{never}; output so far:\n{self.output}")
        ready, _, _ = select.select([self.fd], [], [], left)
        if ready:
            try:
                self.output += os.read(self.fd, 4096).decode(errors="replace")
            except OSError:  # the child closed the terminal
                raise AssertionError(f"{exited}:\n{self.output}") from None

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        # A test that failed half-way must not leave the child running.
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.fd)
