"""One TLS context for every httpx client the tests build.

httpx loads certifi's CA bundle into a new ``SSLContext`` for each client (~30 ms of
CPU), and the tests build several hundred clients — most for plain http on loopback,
through ``httpx.get`` and the openai and ollama SDKs. A context is safe to share between
clients (httpx's own advice for many clients), so the default one is made once per
environment it depends on (``SSL_CERT_FILE``, ``SSL_CERT_DIR``) and reused."""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx._config
import httpx._transports.default as transports

_made = httpx._config.create_ssl_context
_shared: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def _create_ssl_context(verify: Any = True, cert: Any = None,
                        trust_env: bool = True) -> ssl.SSLContext:
    if verify is not True or cert is not None:
        return _made(verify=verify, cert=cert, trust_env=trust_env)
    key = (trust_env, os.environ.get("SSL_CERT_FILE") if trust_env else None,
           os.environ.get("SSL_CERT_DIR") if trust_env else None)
    context = _shared.get(key)
    if context is None:
        context = _shared[key] = _made(verify=verify, cert=cert, trust_env=trust_env)
    return context


def share_default_context() -> None:
    """Make httpx's transports reuse the default context (idempotent)."""
    setattr(transports, "create_ssl_context", _create_ssl_context)  # noqa: B010 - not exported
