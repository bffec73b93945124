"""The one seam under the HTTP client: a transport sends a request and hands back the
status, headers and body chunks. Production uses ``AiohttpTransport``; tests pass their
own (tests/support/transport.py adapts httpx's MockTransport) and the client, its
egress checks and records, its limits and its error table run unchanged above it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .egress import network_class

if TYPE_CHECKING:
    import yarl  # imported when a request is made: aiohttp's own URL type


# What went wrong on the wire, for one error table (http/errors.py).
WireKind = Literal["connect", "loopback_down", "timeout", "closed", "status", "too_large",
                   "other"]


class HTTPError(Exception):
    """A failed exchange: no answer (``kind`` says why) or, with ``kind == "status"``, an
    answer whose status says it failed (``status``, ``body``, ``reason``)."""

    def __init__(self, kind: WireKind, detail: str, *, status: int | None = None,
                 body: bytes = b"", reason: str = "") -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail
        self.status, self.body, self.reason = status, body, reason

    @property
    def wire_name(self) -> str:
        """How the egress record names the failure: the underlying exception's class
        (``ClientConnectorError``, ``ConnectError`` …) or the kind."""
        cause = self.__cause__
        return type(cause).__name__ if cause is not None else self.kind


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: yarl.URL
    headers: Mapping[str, str]
    content: bytes
    connect_timeout: float | None
    read_timeout: float | None


class Answer(Protocol):
    """A transport's answer: status and headers now, the body as it arrives."""

    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks; failures raise HTTPError."""
        ...

    async def aclose(self) -> None:
        """Done with it: a body not read to the end closes the connection (which is
        what stops a server generating for a client that left)."""
        ...


class Transport(Protocol):
    async def send(self, request: Request) -> Answer:
        """Send; failures before an answer raise HTTPError."""
        ...

    async def connectable(self, host: str, port: int, timeout: float) -> bool:
        """Whether something accepts a TCP connection there (discovery's first, cheapest
        look at a loopback port, before any HTTP): no bytes are sent."""
        ...

    async def aclose(self) -> None: ...


# Connections kept per server, as httpx's default pool did.
POOL_LIMIT = 100


def _wire_kind(exc: BaseException) -> WireKind | None:
    """Which kind of failure an aiohttp exception is; None for anything else."""
    import aiohttp

    # Order matters: a connect timeout is a timeout, a refused connect a connect error.
    for kind, types in (
        ("timeout", (TimeoutError, aiohttp.ServerTimeoutError)),
        ("connect", (aiohttp.ClientConnectorError,)),
        ("closed", (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                    aiohttp.ClientOSError)),
        ("other", (aiohttp.ClientError, aiohttp.InvalidURL)),
    ):
        if isinstance(exc, types):
            return kind  # type: ignore[return-value]
    return None


def converted(exc: BaseException) -> BaseException:
    """An aiohttp failure as HTTPError (its cause kept); anything else unchanged."""
    if isinstance(exc, HTTPError):
        return exc
    kind = _wire_kind(exc)
    if kind is None:
        return exc
    if kind == "connect" and _loopback_down(exc):
        kind = "loopback_down"
    detail = type(exc).__name__ if kind == "timeout" else f"{type(exc).__name__}: {exc}"
    error = HTTPError(kind, detail)
    error.__cause__ = exc
    return error


def _loopback_down(exc: BaseException) -> bool:
    """A loopback address answering "network unreachable": its interface is down, as in a
    namespace made with plain ``unshare -n`` — not a server that is not running."""
    os_error = getattr(exc, "os_error", None)
    host = getattr(exc, "host", None)
    return (getattr(os_error, "errno", None) == errno.ENETUNREACH
            and isinstance(host, str) and network_class(host) == "loopback")


class _AiohttpAnswer:
    __slots__ = ("_response", "headers", "reason", "status")

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status: int = response.status
        self.reason: str = response.reason or ""
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except Exception as exc:
            error = converted(exc)
            if error is exc:
                raise
            raise error from exc

    async def aclose(self) -> None:
        # release(): back to the pool when read to the end, closed otherwise.
        self._response.release()
        await self._response.wait_for_close()


class AiohttpTransport:
    """aiohttp's client: keep-alive connections reused, no proxy from the environment, no
    cookies kept, no ``Accept-Encoding`` (the bytes counted are the bytes sent), TLS
    verified with the system's CA store. Chosen for the hot path (every gateway request
    makes one): about half the CPU per request of httpx over the same transport
    (docs/benchmarks.md)."""

    def __init__(self, *, pool_limit: int = POOL_LIMIT) -> None:
        self._pool_limit = pool_limit
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[tuple[float | None, float | None], Any] = {}

    def _open(self) -> Any:
        # Made on first use: a session belongs to the running event loop (a client used
        # from a second loop, e.g. two asyncio.run calls, gets its own).
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            import aiohttp

            _drop(self._session)
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_limit),
                trust_env=False, skip_auto_headers=("Accept-Encoding", "User-Agent"),
                cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def _timeout(self, connect: float | None, read: float | None) -> Any:
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            import aiohttp

            timeout = self._timeouts[(connect, read)] = aiohttp.ClientTimeout(
                total=None, sock_connect=connect, sock_read=read)
        return timeout

    async def connectable(self, host: str, port: int, timeout: float) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (TimeoutError, OSError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def send(self, request: Request) -> Answer:
        try:
            response = await self._open().request(
                request.method, request.url, data=request.content or None,
                headers=request.headers, allow_redirects=False,
                timeout=self._timeout(request.connect_timeout, request.read_timeout))
        except Exception as exc:
            error = converted(exc)
            if error is exc:
                raise
            raise error from exc
        return _AiohttpAnswer(response)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()
        else:
            _drop(session)


def _drop(session: Any) -> None:
    """Let go of a session made on another event loop (e.g. an earlier ``asyncio.run``):
    it cannot be awaited from here, so its connections are closed without waiting
    (aiohttp's synchronous half of ``close()``, pinned version) and it is detached, which
    spares the user aiohttp's "Unclosed client session" warning at exit."""
    if session is None or session.closed:
        return
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()
