"""Per-client gateway tokens: one secret per laptop or teammate, revocable alone.

Stored in ``tokens.json`` under home as a salted HMAC-SHA256 of each secret (the secret
is shown once, by ``localinfer tokens add``, and never stored). The gateway reads the
file per version (a revocation by the CLI is seen at the next request, and by an open
stream within one chunk) and fails closed on a damaged file: no request is let in until
it is fixed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .statefile import JsonStateFile, StateFileError, want_dict, want_str, want_time

TOKENS_FILE = "tokens.json"
PREFIX = "li_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class ClientToken:
    name: str
    salt: bytes
    digest: bytes
    created: float

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_digest(self.salt, secret), self.digest)

    def to_json(self) -> dict[str, Any]:
        return {"salt": self.salt.hex(), "hmac_sha256": self.digest.hex(),
                "created": self.created}


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def _hex(value: Any, what: str, size: int) -> bytes:
    raw = bytes.fromhex(want_str(value, what))
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return raw


def _parse(raw: Any) -> dict[str, ClientToken]:
    tokens = want_dict(want_dict(raw, "tokens.json").get("tokens", {}), "tokens")
    parsed: dict[str, ClientToken] = {}
    for name, entry in tokens.items():
        entry = want_dict(entry, f"token {name!r}")
        parsed[name] = ClientToken(name=name, salt=_hex(entry["salt"], "salt", 16),
                                   digest=_hex(entry["hmac_sha256"], "hmac_sha256", 32),
                                   created=want_time(entry["created"], "created"))
    return parsed


class TokenStore:
    def __init__(self, home: Path) -> None:
        self.file: JsonStateFile[dict[str, ClientToken]] = JsonStateFile(
            home / TOKENS_FILE, _parse, dict,
                                  fix="remove or repair it (`localinfer tokens list` "
                                  "shows the problem); until then the gateway refuses "
                                  "every request")

    def all(self) -> dict[str, ClientToken]:
        return self.file.read()

    def add(self, name: str) -> str:
        """A new secret for ``name`` (replacing an old one of that name), shown once."""
        if not _NAME.fullmatch(name):
            raise UsageError(f"token name {name!r}: use 1-64 letters, digits or ._@-")
        tokens = dict(self.all())
        secret = PREFIX + secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        tokens[name] = ClientToken(name, salt, _digest(salt, secret), time.time())
        self._write(tokens)
        return secret

    def remove(self, name: str) -> bool:
        tokens = dict(self.all())
        if tokens.pop(name, None) is None:
            return False
        self._write(tokens)
        return True

    def identify(self, secret: str) -> str | None:
        """The name of the token ``secret`` is, or None (StateFileError: damaged file)."""
        token = self.find(secret)
        return token.name if token is not None else None

    def find(self, secret: str) -> ClientToken | None:
        """The token ``secret`` is, or None (StateFileError: damaged file)."""
        found = None
        for token in self.all().values():
            # Every token is compared (no early exit), so timing does not tell which.
            if token.matches(secret) and found is None:
                found = token
        return found

    def holds(self, token: ClientToken) -> bool:
        """Is ``token`` still there, unchanged (not removed, not replaced by a new secret
        of the same name)? One stat while the file is unchanged; False when it is damaged,
        so an open stream fails closed as new requests do."""
        try:
            return self.all().get(token.name) == token
        except StateFileError:
            return False

    def _write(self, tokens: dict[str, ClientToken]) -> None:
        self.file.write({"version": 1,
                         "tokens": {n: t.to_json() for n, t in sorted(tokens.items())}})
