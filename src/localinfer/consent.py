"""Persisted consent grants: which remote provider the user allowed, when, until when.

A grant names a provider *and the base URL it pointed to* when the user said yes: if
the provider is later re-pointed elsewhere, the old grant no longer counts. Grants live
in ``$LOCALINFER_HOME/consent.json``; nothing secret is stored there (API keys are read
from the environment at request time and never written anywhere).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

Clock = Callable[[], float]

CONSENT_FILE = "consent.json"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``1h``, ``1h30m``, ``7d``, ``2w``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"bad duration '{text}': use a number and a unit (s, m, h, d, w), "
                         "e.g. 30m, 1h, 7d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"bad duration '{text}': must be longer than zero")
    return seconds


@dataclass(frozen=True)
class Grant:
    provider: str
    base_url: str
    granted_at: float
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self, now: float) -> dict[str, Any]:
        return {**asdict(self), "granted": _iso(self.granted_at),
                "expires": _iso(self.expires_at) if self.expires_at else None,
                "active": not self.expired(now)}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


class ConsentStore:
    """Read and write grants. Every call reads the file afresh, so a grant or revocation
    made by another process (the CLI, while a gateway runs) counts at once."""

    def __init__(self, home: Path, *, clock: Clock = time.time) -> None:
        self.path = home / CONSENT_FILE
        self.clock = clock

    def _load(self) -> dict[str, Grant]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read consent grants in {self.path}: {exc}") from exc
        grants: dict[str, Grant] = {}
        for name, entry in (raw.get("grants") or {}).items():
            try:
                grants[name] = Grant(provider=name, base_url=str(entry["base_url"]),
                                     granted_at=float(entry["granted_at"]),
                                     expires_at=_float_or_none(entry.get("expires_at")))
            except (KeyError, TypeError, ValueError):
                continue  # a damaged entry grants nothing
        return grants

    def _save(self, grants: dict[str, Grant]) -> None:
        body = {"grants": {name: {"base_url": g.base_url, "granted_at": g.granted_at,
                                  "expires_at": g.expires_at}
                           for name, g in sorted(grants.items())}}
        write_json_atomic(self.path, body)

    def grant(self, provider: str, base_url: str, *, duration: float | None = None) -> Grant:
        now = self.clock()
        new = Grant(provider=provider, base_url=base_url, granted_at=now,
                    expires_at=now + duration if duration else None)
        grants = self._load()
        grants[provider] = new
        self._save(grants)
        return new

    def revoke(self, provider: str) -> bool:
        grants = self._load()
        if grants.pop(provider, None) is None:
            return False
        self._save(grants)
        return True

    def get(self, provider: str) -> Grant | None:
        """The stored grant, expired or not (for messages that say which)."""
        return self._load().get(provider)

    def valid(self, provider: str, base_url: str) -> bool:
        grant = self.get(provider)
        return (grant is not None and not grant.expired(self.clock())
                and grant.base_url == base_url)

    def list(self) -> list[Grant]:
        return sorted(self._load().values(), key=lambda g: g.provider)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


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
