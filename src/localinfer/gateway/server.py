"""Running the gateway: uvicorn with the limits a long-running local server needs.

uvicorn has no header or body read timeout, so a client that trickles bytes holds a
connection (and a file descriptor) forever; 300 such clients used to exhaust the fd
limit and take ``/health`` down. ``GuardedHttpTools`` adds:

- a header timeout, from the connection's first byte (or its opening) to the end of
  the headers, and a body timeout, from the end of the headers to the end of the body;
  a connection past either is closed (the request, if any, sees a disconnect);
- a cap on open connections: the one past it gets ``503`` with ``Retry-After`` and is
  closed before any request is read.

The process's soft fd limit is raised to its hard limit, so the cap, not the kernel,
is what refuses connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import Settings
from .errors import ServiceUnavailable, openai_error
from .wire import dumps

RETRY_AFTER_SECONDS: Final = 1


def raise_fd_limit() -> tuple[int, int] | None:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard), None where unknown."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft, hard


def _busy_response() -> bytes:
    body = dumps(openai_error(ServiceUnavailable(
        "the gateway has too many open connections; retry shortly "
        "(LOCALINFER_MAX_CONNECTIONS)")))
    return (b"HTTP/1.1 503 Service Unavailable\r\n"
            b"content-type: application/json\r\n"
            b"retry-after: " + str(RETRY_AFTER_SECONDS).encode() + b"\r\n"
            b"connection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def guarded_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``settings``' read timeouts and connection cap."""
    header_timeout = settings.header_timeout
    body_timeout = settings.body_timeout
    max_connections = settings.max_connections
    busy = _busy_response()

    class GuardedHttpTools(HttpToolsProtocol):
        _read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(busy)
                transport.close()
                return
            self._arm(header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm(header_timeout)

        def on_headers_complete(self) -> None:
            self._arm(body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _expire(self) -> None:
            self._read_timer = None
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpTools


def uvicorn_config(app: Any, settings: Settings, *, log_level: str = "warning",
                   access_log: bool = False) -> uvicorn.Config:
    return uvicorn.Config(
        app, http=guarded_protocol(settings), log_level=log_level, access_log=access_log,
        server_header=False, lifespan="on",
        # Idle keep-alive connections go after 5 s (uvicorn's default), well inside the
        # header timeout, so an idle client never counts against a trickling one.
        timeout_keep_alive=5,
        # Room for the connection cap to answer 503 before the kernel refuses.
        backlog=max(2048, settings.max_connections))


def serve(app: Any, settings: Settings, sock: socket.socket, *, log_level: str = "warning",
          access_log: bool = False) -> None:
    """Run the gateway on an already listening socket until interrupted."""
    raise_fd_limit()
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level,
                                           access_log=access_log))
    server.run(sockets=[sock])
