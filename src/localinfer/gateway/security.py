"""Who may talk to the gateway: a web page must not be able to drive it.

Checked in this order, before any route runs (one ASGI middleware, no per-request
objects beyond a header scan):

1. Host allow-list (DNS rebinding, Ollama's CVE-2024-28224): the Host header must name
   localhost / 127.0.0.1 / [::1] (any port) or an allow-listed host.
2. Origin allow-list: a browser request from any other origin is refused; the
   gateway's own origin is always allowed. Exact (scheme, host, port) matching, so
   look-alikes such as ``http://localhost.evil.com`` never pass. No wildcard CORS.
3. Fetch metadata: a cross-site request without an allowed Origin (``no-cors``
   GETs from ``<img>`` or ``<script>`` carry none) is refused.
4. CORS and Private Network Access preflights are answered only for allowed origins.
5. Bearer token, when one is set (required off loopback): the shared token, or a
   per-client token (``localinfer tokens add``; once any exists one is required).
   Whether a token is required is decided at start and only ever tightens: revoking
   the last client token lets nobody in (a log line says so), it never opens the
   gateway. ``/health`` stays open so discovery can recognise the gateway. The client's
   name goes into the request's trace, so the egress ledger records which token made
   it; a per-client token also goes into the scope as a grant, so a stream open when it
   is revoked ends (streaming.RevocationWatch).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import trace
from ..errors import LocalInferError, UsageError
from ..settings import Settings
from ..statefile import StateFileError
from ..tokens import ClientToken, TokenStore
from .errors import BadHeaders, Forbidden, Unauthorized
from .streaming import GRANT_KEY
from .wire import BACKEND_HEADER, NO_BACKEND, NO_TIER, TIER_HEADER, dumps

log = logging.getLogger("localinfer.gateway")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = frozenset({"/health"})
HOST_HEADER = "x-localinfer-host"
EXPOSED_HEADERS = f"{BACKEND_HEADER}, {TIER_HEADER}, {HOST_HEADER}"
SHARED_TOKEN_NAME = "shared-token"  # how the ledger names LOCALINFER_TOKEN's requests
ALLOWED_METHODS = "GET, POST, OPTIONS"
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host, port
ErrorBody = Callable[[str, LocalInferError], dict[str, Any]]


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` from a Host header; brackets dropped from IPv6. None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1:]
    else:
        host, sep, rest = value.partition(":")
        rest = sep + rest
    if rest and (not rest.startswith(":") or not rest[1:].isdigit()):
        return None
    port = int(rest[1:]) if rest else None
    if not host or (port is not None and port > 65535):
        return None
    return host, port


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an Origin header; None for "null" or anything odd."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


@dataclass(frozen=True)
class OriginRule:
    scheme: str
    host: str
    port: int | None  # None: any port (`http://localhost:*`)

    @classmethod
    def parse(cls, text: str) -> OriginRule:
        text = text.strip()
        if text == "*" or "*" in text.replace(":*", ""):
            raise UsageError(f"allowed origin '{text}': wildcards other than ':*' (any port) "
                             "are refused; list each origin")
        any_port = text.endswith(":*")
        origin = parse_origin(text[:-2] if any_port else text)
        if origin is None:
            raise UsageError(f"allowed origin '{text}' is not scheme://host[:port]")
        scheme, host, port = origin
        return cls(scheme, host, None if any_port else port)

    def matches(self, origin: Origin) -> bool:
        scheme, host, port = origin
        return (scheme == self.scheme and host == self.host
                and (self.port is None or port == self.port))


def is_loopback_bind(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


@dataclass
class TokenMode:
    """Whether a bearer token is required: fixed at start, and it only ever tightens (a
    loopback gateway starts requiring one when the first client token is added). Never
    relaxed at run time, so revoking the last client token cannot open the gateway."""

    required: bool
    warned_empty: bool = False

    def requires(self, have_clients: bool, shared: bool) -> bool:
        self.required = self.required or have_clients
        if self.required and not have_clients and not shared:
            if not self.warned_empty:
                log.warning("tokens are required and tokens.json holds none: the gateway "
                            "lets nobody in until `localinfer tokens add NAME` or a restart "
                            "(it is never opened while running)")
            self.warned_empty = True
        else:
            self.warned_empty = False  # say it again if it happens again
        return self.required


@dataclass(frozen=True)
class ClientGrant:
    """A per-client token a request was let in with, re-checked while its answer
    streams (streaming.Revocable)."""

    store: TokenStore
    token: ClientToken

    def valid(self) -> bool:
        return self.store.holds(self.token)

    def revoked(self) -> Unauthorized:
        return Unauthorized(f"token '{self.token.name}' was revoked during the answer, so "
                            "it was stopped")


@dataclass(frozen=True)
class Access:
    allowed: bool
    client: str | None = None  # the name the ledger records
    grant: ClientGrant | None = None  # set for per-client tokens: revocable at run time


@dataclass(frozen=True)
class AccessPolicy:
    hosts: frozenset[str]
    origins: tuple[OriginRule, ...]
    token: str | None
    mode: TokenMode  # is a token required (mutable: it only ever tightens)
    # Bound to 0.0.0.0 / ::: any IP-literal Host is this machine; DNS rebinding needs
    # a name, so only names are held to the allow-list.
    ip_literal_hosts: bool = False
    clients: TokenStore | None = None
    # Off loopback a token is always required, even after every client token is revoked.
    exposed: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        token = settings.token.get_secret_value() if settings.token else None
        clients = TokenStore(settings.home)
        if not is_loopback_bind(settings.host) and not token and not clients.all():
            raise UsageError(
                f"binding {settings.host} exposes the gateway beyond this machine: set a "
                "token (--token or LOCALINFER_TOKEN, or `localinfer tokens add NAME`), or "
                "bind 127.0.0.1")
        hosts = {h.strip("[]").lower() for h in settings.allowed_hosts} | LOOPBACK_HOSTS
        if not is_loopback_bind(settings.host) and not _unspecified(settings.host):
            hosts.add(settings.host.strip("[]").lower())
        exposed = not is_loopback_bind(settings.host)
        try:
            have_clients = bool(clients.all())
        except StateFileError:
            have_clients = True  # damaged: fail closed (every request says why)
        return cls(hosts=frozenset(hosts),
                   origins=tuple(OriginRule.parse(o) for o in settings.allowed_origins),
                   token=token, ip_literal_hosts=_unspecified(settings.host),
                   clients=clients, exposed=exposed,
                   mode=TokenMode(required=bool(token) or exposed or have_clients))

    def host_allowed(self, host: str) -> bool:
        if host in self.hosts:
            return True
        if self.ip_literal_hosts:
            try:
                ipaddress.ip_address(host)
                return True
            except ValueError:
                return False
        return False

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        own = split_host(host_header)
        # The gateway's own origin: a page it served itself (same scheme-less host:port).
        if own is not None and parsed[0] == "http" and parsed[1:] == (own[0], own[1] or 80):
            return True
        return any(rule.matches(parsed) for rule in self.origins)

    def token_ok(self, authorization: str) -> bool:
        return self.authenticate(authorization).allowed

    def authenticate(self, authorization: str) -> Access:
        """Who the request is. A damaged tokens.json lets nobody in (StateFileError
        propagates for the caller to say so)."""
        clients = self.clients.all() if self.clients is not None else {}
        if not self.mode.requires(bool(clients), self.token is not None):
            return Access(True)
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return Access(False)
        secret = value.strip()
        if self.token is not None and hmac.compare_digest(secret.encode(),
                                                          self.token.encode()):
            return Access(True, SHARED_TOKEN_NAME)  # fixed for the process: not revocable
        if self.clients is None or not clients:
            return Access(False)
        found = self.clients.find(secret)
        if found is None:
            return Access(False)
        return Access(True, found.name, ClientGrant(self.clients, found))


def _served_host(request_trace: trace.RequestTrace, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The host that served: set by the host backend; else the backend (embedded or a
    remote provider is no host, so its backend name stands in), else none."""
    if request_trace.host:
        return request_trace.host.encode("latin-1", "replace")
    backend = dict(headers).get(BACKEND_HEADER.encode(), NO_BACKEND.encode())
    return backend if backend != NO_BACKEND.encode() else NO_TIER.encode()


# Headers that must appear at most once: two Hosts (RFC 9112 §3.2: 400) or two Origins
# would let one layer check a value another layer never uses.
_SINGLE = frozenset({b"host", b"origin", b"authorization"})


def _headers(scope: Scope, names: Iterable[bytes]) -> tuple[dict[bytes, str], bytes | None]:
    """The first value of each wanted header, and the name of a single-valued header
    that was sent twice (or None)."""
    wanted = set(names)
    found: dict[bytes, str] = {}
    repeated: bytes | None = None
    for name, value in scope["headers"]:
        if name in wanted:
            if name not in found:
                found[name] = value.decode("latin-1")
            elif name in _SINGLE:
                repeated = repeated or name
    return found, repeated


_NAMES = (b"host", b"origin", b"sec-fetch-site", b"authorization",
          b"access-control-request-method", b"access-control-request-headers",
          b"access-control-request-private-network")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_, ")


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, policy: AccessPolicy, error_body: ErrorBody) -> None:
        self.app = app
        self.policy = policy
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No route speaks WebSocket; refuse before any check could be bypassed.
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        h, repeated = _headers(scope, _NAMES)
        path: str = scope["path"]
        if repeated is not None:
            name = repeated.decode()
            await self._refuse(send, path, BadHeaders(
                f"the {name.title()} header was sent more than once; send it once"))
            return
        host_header = h.get(b"host", "")
        host = split_host(host_header)
        if host is None or not policy.host_allowed(host[0]):
            shown = host_header[:80] or "(none)"
            await self._refuse(send, path, Forbidden(
                f"Host '{shown}' is not allowed; the gateway answers localhost, 127.0.0.1 "
                "and [::1] (add names with LOCALINFER_ALLOWED_HOSTS)", code="host_not_allowed"))
            return
        origin = h.get(b"origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None:
            if not policy.origin_allowed(origin, host_header):
                await self._refuse(send, path, Forbidden(
                    f"Origin '{origin[:80]}' is not allowed (add it with "
                    "LOCALINFER_ALLOWED_ORIGINS)", code="origin_not_allowed"))
                return
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin"),
                    (b"access-control-expose-headers", EXPOSED_HEADERS.encode())]
        elif h.get(b"sec-fetch-site", "none").lower() in ("cross-site", "same-site"):
            await self._refuse(send, path, Forbidden(
                "cross-site request without an allowed Origin refused",
                code="cross_site_refused"))
            return
        if scope["method"] == "OPTIONS" and origin is not None \
                and b"access-control-request-method" in h:
            await self._preflight(send, h, cors)
            return
        client: str | None = None
        if path not in OPEN_PATHS:
            try:
                access = policy.authenticate(h.get(b"authorization", ""))
            except StateFileError as exc:
                await self._refuse(send, path, Unauthorized(exc.message),
                                   extra=[(b"www-authenticate", b"Bearer"), *cors])
                return
            if not access.allowed:
                await self._refuse(send, path, Unauthorized(
                    "missing, wrong or revoked bearer token (send `Authorization: Bearer "
                    "TOKEN`)"), extra=[(b"www-authenticate", b"Bearer"), *cors])
                return
            client = access.client
            if access.grant is not None:
                scope = {**scope, GRANT_KEY: access.grant}
        request_trace, reset = trace.begin(client)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if BACKEND_HEADER.encode() not in present:
                    headers.append((BACKEND_HEADER.encode(), NO_BACKEND.encode()))
                if TIER_HEADER.encode() not in present:
                    headers.append((TIER_HEADER.encode(), NO_TIER.encode()))
                if HOST_HEADER.encode() not in present:
                    headers.append((HOST_HEADER.encode(), _served_host(request_trace, headers)))
                message = {**message, "headers": headers + cors}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            trace.end(reset)

    async def _preflight(self, send: Send, h: dict[bytes, str],
                         cors: list[tuple[bytes, bytes]]) -> None:
        asked = h.get(b"access-control-request-headers", "").lower()
        allow_headers = asked if set(asked) <= _TOKEN_CHARS else "authorization, content-type"
        headers = [*cors, (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                   (b"access-control-allow-headers", allow_headers.encode()),
                   (b"access-control-max-age", b"600"),
                   (BACKEND_HEADER.encode(), NO_BACKEND.encode()),
                   (TIER_HEADER.encode(), NO_TIER.encode()),
                   (b"content-length", b"0")]
        if h.get(b"access-control-request-private-network", "").lower() == "true":
            headers.append((b"access-control-allow-private-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, send: Send, path: str, exc: LocalInferError,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        body = dumps(self.error_body(path, exc))
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()),
                   (BACKEND_HEADER.encode(), NO_BACKEND.encode()),
                   (TIER_HEADER.encode(), NO_TIER.encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": exc.http_status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": body})
