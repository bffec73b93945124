"""Secrets never echo: API keys and bearer-shaped tokens are cut out of every error
message and log line before anyone sees them.

A provider's error body may repeat the key it was sent ("401: bad key Bearer sk-…"),
so every ``LocalInferError`` message passes through ``redact``; keys localinfer reads
are registered here when read (in memory only) so they are removed wherever they
appear, whatever their shape.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

MASK: Final = "[redacted]"
# Shapes of credentials in text: an Authorization value, OpenAI/Anthropic-style keys,
# and `api_key=...`/`"token": "..."` pairs.
_PATTERNS: Final = (
    re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)"
               r"[^\s\"',;]{6,}"),
)
_MIN_SECRET: Final = 6  # shorter "keys" would redact ordinary words

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key just read) so it is redacted wherever it appears."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for i, pattern in enumerate(_PATTERNS):
        if i == 0:
            text = pattern.sub(lambda m: f"{m[1]} {MASK}", text)
        elif i == 2:
            text = pattern.sub(lambda m: f"{m[1]}{MASK}", text)
        else:
            text = pattern.sub(MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Log lines get the same treatment. A logger's filter sees only that logger's own
    records, so it goes on the ``localinfer`` logger and on the handlers localinfer
    installs (the CLI's), which see every ``localinfer.*`` record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logging.getLogger("localinfer").addFilter(RedactingFilter())
