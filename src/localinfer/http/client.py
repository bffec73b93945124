"""The one HTTP client: every request localinfer makes (discovery probes, inference calls,
hosts, remote providers, downloads) goes through ``HttpClient``, so the egress check,
the egress record, timeouts, the response-size cap and the error kinds live here once.

Before each request the policy is asked (offline mode or a broken strict ledger stops a
pooled connection too); after it, one record: method, host, port, path, bytes each way,
status or the wire error. Redirects are never followed (a caller that wants one follows
it by hand, so each hop is checked and recorded), no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..types import Tier
from .egress import EgressPolicy, NetworkClass, Purpose, network_class, record
from .transport import AiohttpTransport, Answer, HTTPError, Request, Transport

if TYPE_CHECKING:
    import yarl  # imported when a request is made: aiohttp's own URL type

# The most bytes one answer may bring (settings.max_response_bytes has the same default):
# an engine asked for per-token probabilities answered 300 MB to a 170-byte request.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

# Headers for one request, worked out when it is sent (a token read from the
# environment each time, never stored).
AuthHook = Callable[["yarl.URL"], Mapping[str, str]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_UNSET: Any = object()


def json_bytes(value: Any) -> bytes:
    """A request body: orjson, or the standard library for what orjson refuses
    (integers past 64 bits in a pass-through option)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return jsonlib.dumps(value).encode()


def parse_url(text: str) -> yarl.URL:
    """A URL as the client will use it (aiohttp's yarl); ValueError when it is not one."""
    import yarl

    try:
        return yarl.URL(text)
    except (TypeError, UnicodeError) as exc:
        raise ValueError(f"not a URL: {text!r}") from exc


class Response:
    """One answer. From ``request()`` its body is read (``content``); from ``stream()``
    it arrives through ``aiter_bytes``/``aiter_lines``. Closing it records the
    exchange once."""

    def __init__(self, client: HttpClient, request: Request, answer: Answer) -> None:
        self._client, self.request, self._answer = client, request, answer
        self.status_code = answer.status
        self.reason_phrase = answer.reason
        self.headers = answer.headers
        self.received = 0
        self._content: bytes | None = None
        self._closed = False

    @property
    def url(self) -> yarl.URL:
        return self.request.url

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECTS and "location" in self.headers

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise RuntimeError("the body has not been read: await response.aread() first")
        return self._content

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    async def aread(self) -> bytes:
        if self._content is None:
            self._content = b"".join([data async for data in self.aiter_bytes()])
        return self._content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        cap = self._client.max_response_bytes
        async for data in self._answer.chunks():
            self.received += len(data)
            if cap is not None and self.received > cap:
                # Raised inside the read: closing the answer closes the connection,
                # which is what stops the server generating.
                raise HTTPError("too_large", f"the answer passed {cap} bytes "
                                "(max_response_bytes) and was cut off")
            yield data

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines without their line ends (``\\n`` or ``\\r\\n``; a bare
        ``\\r`` is not a line end here: no server we speak to sends one)."""
        rest = b""
        async for data in self.aiter_bytes():
            if b"\n" not in data:
                rest += data
                continue
            *complete, rest = (rest + data).split(b"\n") if rest else data.split(b"\n")
            for line in complete:
                yield line[:-1] if line.endswith(b"\r") else line
        if rest:
            yield rest[:-1] if rest.endswith(b"\r") else rest

    async def raise_for_status(self) -> None:
        """HTTPError (kind ``status``, with the body) for a status >= 400."""
        if self.is_error:
            body = await self.aread()
            raise HTTPError("status", f"HTTP {self.status_code}", status=self.status_code,
                            body=body, reason=self.reason_phrase)

    async def aclose(self, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._answer.aclose()
        finally:
            self._client._record(self.request, self.received, self.status_code,
                                 _wire_error(error))


class HttpClient:
    """Built only by ``make_client``. ``url`` arguments are absolute or a path under
    ``base_url``."""

    def __init__(self, policy: EgressPolicy, *, tier: Tier, purpose: Purpose, base_url: str,
                 connect_timeout: float | None, read_timeout: float | None,
                 headers: Mapping[str, str], auth: AuthHook | None, transport: Transport,
                 max_response_bytes: int | None) -> None:
        self.policy, self.tier, self.purpose = policy, tier, purpose
        self.base_url = base_url.rstrip("/")
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.headers = {"user-agent": "localinfer", **headers}
        self.auth = auth
        self.max_response_bytes = max_response_bytes
        self._transport = transport
        self._urls: dict[str, tuple[yarl.URL, NetworkClass]] = {}

    def _target(self, url: str) -> tuple[yarl.URL, NetworkClass]:
        # Parsed and classified once per URL, not once per request (the hot path asks
        # for the same few paths every time).
        found = self._urls.get(url)
        if found is None:
            import yarl

            full = yarl.URL(url if "://" in url else self.base_url + url)
            if full.scheme not in ("http", "https") or not full.host:
                raise HTTPError("other", f"not an http(s) URL: {url!r}")
            found = (full, network_class(full.host))
            if len(self._urls) < 256:
                self._urls[url] = found
        return found

    def _request(self, method: str, url: str, content: bytes | None, json: Any,
                 headers: Mapping[str, str] | None, timeout: float | None,
                 read_timeout: float | None) -> Request:
        target, network = self._target(url)
        self.policy.check(target, network)
        merged = self.headers
        if json is not _UNSET:
            content = json_bytes(json)
            merged = {**merged, "content-type": "application/json"}
        if headers:
            merged = {**merged, **headers}
        if self.auth is not None:
            extra = self.auth(target)
            if extra:
                merged = {**merged, **extra}
        connect = self.connect_timeout if timeout is _UNSET else timeout
        read = (self.read_timeout if timeout is _UNSET else timeout) \
            if read_timeout is _UNSET else read_timeout
        return Request(method, target, merged, content or b"", connect, read)

    async def _send(self, request: Request) -> Response:
        try:
            answer = await self._transport.send(request)
        except BaseException as exc:
            self._record(request, 0, None, _wire_error(exc) or type(exc).__name__)
            raise
        return Response(self, request, answer)

    async def open(self, method: str, url: str, *, content: bytes | None = None,
                   json: Any = _UNSET, headers: Mapping[str, str] | None = None,
                   timeout: float | None = _UNSET,
                   read_timeout: float | None = _UNSET) -> Response:
        """The answer with its body not yet read; the caller must ``aclose()`` it
        (``stream`` does that for you)."""
        return await self._send(self._request(method, url, content, json, headers,
                                              timeout, read_timeout))

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, *, content: bytes | None = None,
                     json: Any = _UNSET, headers: Mapping[str, str] | None = None,
                     timeout: float | None = _UNSET,
                     read_timeout: float | None = _UNSET) -> AsyncIterator[Response]:
        """``async with client.stream(...) as response:`` — the body not yet read."""
        response = await self.open(method, url, content=content, json=json, headers=headers,
                                   timeout=timeout, read_timeout=read_timeout)
        error: BaseException | None = None
        try:
            yield response
        except BaseException as exc:
            error = exc
            raise
        finally:
            await response.aclose(error)

    async def request(self, method: str, url: str, *, content: bytes | None = None,
                      json: Any = _UNSET, headers: Mapping[str, str] | None = None,
                      timeout: float | None = _UNSET,
                      read_timeout: float | None = _UNSET) -> Response:
        """The whole answer (``content``), whatever its status."""
        async with self.stream(method, url, content=content, json=json, headers=headers,
                               timeout=timeout, read_timeout=read_timeout) as response:
            await response.aread()
        return response

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    def _record(self, request: Request, received: int, status: int | None,
                error: str | None) -> None:
        record(self.policy, self.tier, self.purpose, request.method, request.url,
               request.url.path, len(request.content), received, status, error)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _wire_error(exc: BaseException | None) -> str | None:
    """What the egress record calls a failure: the wire's (a refused connect, a reset, a
    timeout, a cancelled read); not an HTTP status (recorded as such) nor the caller's
    own exceptions after a good answer."""
    if isinstance(exc, HTTPError):
        return None if exc.kind == "status" else exc.wire_name
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError"
    return None


def make_client(
    policy: EgressPolicy,
    *,
    tier: Tier,
    purpose: Purpose = "backend",
    base_url: str = "",
    connect_timeout: float | None = 3.0,
    read_timeout: float | None = 600.0,
    headers: Mapping[str, str] | None = None,
    auth: AuthHook | None = None,
    transport: Transport | None = None,
    max_response_bytes: int | None = MAX_RESPONSE_BYTES,
) -> HttpClient:
    """The only place localinfer builds an HTTP client. ``read_timeout`` bounds the wait
    for each chunk (so it is a stream's first-token timeout too); ``max_response_bytes``
    None: no cap (downloads, which have their own)."""
    return HttpClient(policy, tier=tier, purpose=purpose, base_url=base_url,
                      connect_timeout=connect_timeout, read_timeout=read_timeout,
                      headers=headers or {}, auth=auth,
                      transport=transport or AiohttpTransport(),
                      max_response_bytes=max_response_bytes)
