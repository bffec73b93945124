"""Small JSON state files under ``LOCALINFER_HOME`` (consent.json, remotes.json): read
once per version of the file, written atomically, and a damaged file is one clear
error naming the file, the problem and the fix — never a traceback, never overwritten.

Reads are cached by the file's (inode, size, mtime): state files are replaced
atomically, so a write by another process (the CLI while a gateway runs) is seen at
the next read, while the hot path (every request checks consent) costs one ``stat``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import UsageError

T = TypeVar("T")


class StateFileError(UsageError):
    """A state file exists but cannot be used. Readers fail closed on it."""

    code = "bad_state_file"

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}; {fix}")
        self.path = path


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(path, f"cannot be read ({exc.strerror})",
                             "check its permissions") from None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class JsonStateFile(Generic[T]):
    """One JSON file parsed into ``T`` by ``parse`` (which raises ValueError, TypeError
    or KeyError with a readable message for anything it does not accept)."""

    def __init__(self, path: Path, parse: Callable[[Any], T], empty: Callable[[], T], *,
                 fix: str) -> None:
        self.path = path
        self._parse = parse
        self._empty = empty
        self._fix = fix
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int] | None, T | StateFileError] | None = None

    def read(self) -> T:
        """The parsed content (``empty()`` when the file does not exist); StateFileError
        when it is damaged."""
        stamp = _stamp(self.path)
        with self._lock:
            cached = self._cache
        if cached is not None and cached[0] == stamp:
            value = cached[1]
        else:
            value = self._load(stamp)
            with self._lock:
                self._cache = (stamp, value)
        if isinstance(value, StateFileError):
            raise value
        return value

    def _load(self, stamp: tuple[int, int, int] | None) -> T | StateFileError:
        if stamp is None:
            return self._empty()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._empty()
        except (OSError, UnicodeDecodeError) as exc:
            return StateFileError(self.path, f"cannot be read ({exc})", self._fix)
        try:
            raw = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            return StateFileError(self.path, f"is not valid JSON ({exc})", self._fix)
        try:
            return self._parse(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return StateFileError(self.path, f"has an unexpected shape ({exc})", self._fix)

    def write(self, value: Any) -> None:
        write_json_atomic(self.path, value)
        with self._lock:
            self._cache = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def want_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be an object, not {type(value).__name__}")
    return value


def want_number(value: Any, what: str) -> float:
    """A finite JSON number (booleans and strings are refused; "nan" is no time)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


# Epoch seconds a state file may hold: 1970 up to the year 5000 (time_t and the
# formatting of times stay well-defined inside it).
MAX_TIME = 95_617_584_000.0


def want_time(value: Any, what: str) -> float:
    """Epoch seconds: a finite number from 1970 to the year 5000."""
    seconds = want_number(value, what)
    if not 0 <= seconds <= MAX_TIME:
        raise ValueError(f"{what} must be a time after 1970, not {value!r}")
    return seconds


def want_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def write_json_atomic(path: Path, value: Any) -> None:
    """Write a small JSON state file so a crash never leaves half of it (user-only perms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
