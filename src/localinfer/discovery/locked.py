"""Servers that answer only with a key: listed, never silently skipped, with the one
command that makes them usable."""

from __future__ import annotations

from collections.abc import Iterable

from ..types import ServerInfo
from .answers import Answers, answer

KEY_STATUSES = frozenset({401, 403})


class NeedsKey(ServerInfo):
    """A server found here that refused the probes for want of a key. It lists no
    models, so nothing routes to it until the user declares it with a token."""

    needs_key: bool = True

    @property
    def hint(self) -> str:
        return key_hint(self.base_url)


def key_hint(base_url: str) -> str:
    return f"needs a key: `localinfer hosts add {base_url} --token-env VAR`"


def asks_for_key(answers: Answers, paths: Iterable[str]) -> bool:
    """Some of ``paths`` answered 401/403 and none of them answered 2xx."""
    got = [answer(answers, p) for p in paths]
    return any(a.status in KEY_STATUSES for a in got) and not any(a.ok for a in got)
