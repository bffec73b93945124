"""httpx transports (``httpx.MockTransport`` and friends) as the transport seam of
localinfer's HTTP client: a test writes its fake server as an httpx handler, and the
client above it — egress check and record, size cap, error kinds — is the production one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping

import httpx

from localinfer.http import Answer, HTTPError, Request, WireKind

# Most specific first: a connect timeout is a timeout.
_KINDS: tuple[tuple[type[Exception], WireKind], ...] = (
    (httpx.TimeoutException, "timeout"),
    (httpx.ConnectError, "connect"),
    (httpx.ReadError, "closed"),
    (httpx.RemoteProtocolError, "closed"),
    (httpx.StreamError, "closed"),
    (httpx.HTTPError, "other"),
)


def _converted(exc: Exception) -> HTTPError | None:
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            detail = type(exc).__name__ if kind == "timeout" else f"{type(exc).__name__}: {exc}"
            error = HTTPError(kind, detail)
            error.__cause__ = exc
            return error
    return None


class _Answer:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.reason = response.reason_phrase
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._response.is_stream_consumed:  # built from bytes: read already
            yield self._response.content
            return
        try:
            async for data in self._response.aiter_raw():
                yield data
        except Exception as exc:
            error = _converted(exc)
            if error is None:
                raise
            raise error from exc

    async def aclose(self) -> None:
        await self._response.aclose()


# Whether a (host, port) accepts a TCP connection, for discovery's port check.
Reachable = Callable[[str, int], bool]


class HttpxTransport:
    """Any ``httpx.AsyncBaseTransport`` as a localinfer ``Transport``. ``reachable``
    answers discovery's TCP check (default: every port answers; the handler then
    refuses or serves the HTTP probe)."""

    def __init__(self, inner: httpx.AsyncBaseTransport,
                 reachable: Reachable | None = None) -> None:
        self.inner = inner
        self.reachable = reachable

    async def connectable(self, host: str, port: int, timeout: float) -> bool:
        return self.reachable is None or self.reachable(host, port)

    async def send(self, request: Request) -> Answer:
        sent = httpx.Request(request.method, str(request.url), headers=dict(request.headers),
                             content=request.content)
        try:
            response = await self.inner.handle_async_request(sent)
        except Exception as exc:
            error = _converted(exc)
            if error is None:
                raise
            raise error from exc
        return _Answer(response)

    async def aclose(self) -> None:
        await self.inner.aclose()


Handler = Callable[[httpx.Request], httpx.Response] | Callable[
    [httpx.Request], Coroutine[None, None, httpx.Response]]


def mock_transport(handler: Handler, reachable: Reachable | None = None) -> HttpxTransport:
    """``httpx.MockTransport(handler)`` under localinfer's client."""
    return HttpxTransport(httpx.MockTransport(handler), reachable)
