"""Persisted consent grants: which remote provider the user allowed, when, until when.

A grant names a provider *and the base URL it pointed to* when the user said yes: if
the provider is later re-pointed elsewhere, the old grant no longer counts. Grants live
in ``$LOCALINFER_HOME/consent.json``; nothing secret is stored there (API keys are read
from the environment at request time and never written anywhere).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .clock import Clock, iso_time
from .errors import UsageError
from .statefile import (
    JsonStateFile,
    StateFileError,
    want_dict,
    want_str,
    want_time,
    write_json_atomic,
)

log = logging.getLogger(__name__)

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
        return {**asdict(self), "granted": iso_time(self.granted_at),
                "expires": iso_time(self.expires_at) if self.expires_at else None,
                "active": not self.expired(now)}


def _parse_grants(raw: Any) -> dict[str, Grant]:
    grants: dict[str, Grant] = {}
    entries = want_dict(want_dict(raw, "the file").get("grants") or {}, "`grants`")
    for name, entry in entries.items():
        try:
            entry = want_dict(entry, f"grant '{name}'")
            expires = entry.get("expires_at")
            grants[name] = Grant(
                provider=name, base_url=want_str(entry.get("base_url"), f"'{name}'.base_url"),
                granted_at=want_time(entry.get("granted_at"), f"'{name}'.granted_at"),
                expires_at=None if expires is None
                else want_time(expires, f"'{name}'.expires_at"))
        except (TypeError, ValueError) as exc:
            # One damaged grant grants nothing; the others still count.
            log.warning("%s: ignoring a damaged grant: %s", CONSENT_FILE, exc)
    return grants


class ConsentStore:
    """Read and write grants. Each read checks the file afresh (one ``stat``; parsed
    again only when it changed), so a grant or revocation made by another process (the
    CLI, while a gateway runs) counts at once.

    A damaged file fails closed: ``valid()`` is False for every provider (and says so
    once in the log), while ``list``/``grant``/``revoke`` raise StateFileError rather
    than read or overwrite it.
    """

    def __init__(self, home: Path, *, clock: Clock = time.time) -> None:
        self.path = home / CONSENT_FILE
        self.clock = clock
        self._file: JsonStateFile[dict[str, Grant]] = JsonStateFile(
            self.path, _parse_grants, dict,
            fix="fix or remove it (removing it revokes every grant), then grant again")
        self._warned: StateFileError | None = None

    def _load(self) -> dict[str, Grant]:
        return self._file.read()

    def _save(self, grants: dict[str, Grant]) -> None:
        body = {"grants": {name: {"base_url": g.base_url, "granted_at": g.granted_at,
                                  "expires_at": g.expires_at}
                           for name, g in sorted(grants.items())}}
        self._file.write(body)

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
        try:
            grant = self.get(provider)
        except StateFileError as exc:
            if self._warned is None or str(self._warned) != str(exc):
                log.warning("%s (no remote provider is allowed until then)", exc.message)
                self._warned = exc
            return False
        return (grant is not None and not grant.expired(self.clock())
                and grant.base_url == base_url)

    def list(self) -> list[Grant]:
        return sorted(self._load().values(), key=lambda g: g.provider)


__all__ = ["CONSENT_FILE", "ConsentStore", "Grant", "parse_duration", "write_json_atomic"]
