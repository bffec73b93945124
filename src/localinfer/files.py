"""What a path given by the user really is, said in one line: a FIFO would block a
reader forever, a device never ends, a symlink loop raises deep inside pathlib, and a
name that is not valid UTF-8 cannot be stored or printed as it is."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# File types, as the message names them.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def shown(path: Path | str) -> str:
    """The path as text that can always be printed (undecodable bytes escaped)."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (following symlinks), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "no such file or directory"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop (it points back to itself)"
        return exc.strerror or str(exc)
    except (RuntimeError, ValueError) as exc:  # pathlib's own loop detection, NUL bytes
        return str(exc)
    if not stat.S_ISREG(st.st_mode):
        return kind_of(st.st_mode)
    return None


def undecodable_name(path: Path) -> bool:
    """A file name that is not valid UTF-8 (Python holds it with surrogate escapes)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def safe_resolve(path: Path) -> Path:
    """``path.resolve()`` that never raises for loops: the path as given instead."""
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):
        return path.expanduser().absolute()
