"""The one HTTP layer: every outbound request localinfer makes goes through a client
built here, so timeouts, the egress guard and the egress record live in one place.

``EgressPolicy`` decides before a connection is opened (offline mode refuses every
non-loopback destination) and is told after each request what crossed the wire.
It records scheme, host, port and path only: never query strings, headers or bodies.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .errors import (
    BackendError,
    BackendTimeout,
    ContextLengthExceeded,
    EgressBlocked,
    StreamTruncated,
)
from .trace import client_name
from .types import Tier

NetworkClass = Literal["loopback", "private", "public"]
Purpose = Literal["discovery", "backend", "download"]

_PRIVATE_SUFFIXES = (".local", ".lan", ".home.arpa", ".internal")


def network_class(host: str) -> NetworkClass:
    """Classify a destination without resolving it (no DNS lookup leaves the machine)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "private" if host.endswith(_PRIVATE_SUFFIXES) else "public"
    if ip.is_loopback:
        return "loopback"
    if ip.is_private or ip.is_link_local:
        return "private"
    return "public"


@dataclass(frozen=True)
class EgressRecord:
    time: float
    method: str
    scheme: str
    host: str
    port: int
    path: str
    bytes_sent: int
    bytes_received: int
    status: int | None
    network: NetworkClass
    tier: Tier
    purpose: Purpose
    error: str | None = None
    # device | lan (a host's declared trust) | remote; the gateway token's name, if any.
    trust: str | None = None
    client: str | None = None


Recorder = Callable[[EgressRecord], None]


@dataclass
class EgressPolicy:
    """What may leave, and who hears about what did."""

    offline: bool = False
    recorders: list[Recorder] = field(default_factory=list)
    # Strict: an off-machine request that could not be recorded is not made. Returns
    # why recording is broken, or None (the ledger's ``problem``).
    unrecordable: Callable[[], str | None] | None = None
    # Declared trust of inference hosts by (host, port), filled by hosts.HostPool.
    trust: dict[tuple[str, int], str] = field(default_factory=dict)

    def trust_class(self, host: str, port: int, tier: Tier) -> str:
        if tier == "remote":
            return "remote"
        declared = self.trust.get((host, port))
        if declared is not None:
            return declared
        network = network_class(host)
        return "device" if network == "loopback" else "lan" if network == "private" else "remote"

    def check(self, url: httpx.URL) -> None:
        if network_class(url.host) == "loopback":
            return
        if self.offline:
            raise EgressBlocked(
                f"offline mode: refused to connect to {url.scheme}://{url.host}:{_port(url)} "
                "(unset LOCALINFER_OFFLINE or drop --offline to allow it)"
            )
        why = self.unrecordable() if self.unrecordable is not None else None
        if why is not None:
            raise EgressBlocked(
                f"strict ledger: refused to connect to {url.scheme}://{url.host}:{_port(url)} "
                f"because it could not be recorded: {why}")

    def record(self, rec: EgressRecord) -> None:
        for recorder in self.recorders:
            with contextlib.suppress(Exception):
                recorder(rec)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, done: Callable[[int, str | None], None]):
        self._inner = inner
        self._done = done
        self._count = 0
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._count += len(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(type(exc).__name__)
            raise

    def _finish(self, error: str | None) -> None:
        if not self._finished:
            self._finished = True
            self._done(self._count, error)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finish(None)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport: checks the policy first, records after."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: EgressPolicy, tier: Tier,
                 purpose: Purpose) -> None:
        self._inner = inner
        self._policy = policy
        self._tier = tier
        self._purpose = purpose

    def _record(self, request: httpx.Request, sent: int, received: int, status: int | None,
                error: str | None) -> None:
        url = request.url
        self._policy.record(EgressRecord(
            time=time.time(), method=request.method, scheme=url.scheme, host=url.host,
            port=_port(url), path=url.path, bytes_sent=sent, bytes_received=received,
            status=status, network=network_class(url.host), tier=self._tier,
            purpose=self._purpose, error=error,
            trust=self._policy.trust_class(url.host, _port(url), self._tier),
            client=client_name(),
        ))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check(request.url)
        try:
            sent = len(request.content)
        except httpx.RequestNotRead:
            sent = int(request.headers.get("content-length", 0))
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as exc:
            self._record(request, sent, 0, None, type(exc).__name__)
            raise
        status = response.status_code

        def done(received: int, error: str | None) -> None:
            self._record(request, sent, received, status, error)

        if response.is_closed:
            # Already read in full (a Response built from bytes, e.g. by MockTransport):
            # httpx will never iterate or close its stream, so record now.
            done(len(response.content), None)
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountingStream(response.stream, done)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _default_transport(purpose: Purpose) -> httpx.AsyncBaseTransport:
    if purpose == "backend":
        # Inference calls are the hot path (every gateway request makes one): aiohttp's
        # HTTP/1.1 client costs ~40% less CPU per request than httpcore here
        # (docs/benchmarks.md). Downloads and probes keep httpcore.
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(retries=0, trust_env=False)
    return httpx.AsyncHTTPTransport(retries=0)


def make_client(
    policy: EgressPolicy,
    *,
    tier: Tier,
    purpose: Purpose = "backend",
    base_url: str = "",
    connect_timeout: float = 3.0,
    read_timeout: float | None = 600.0,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The only place localinfer builds an HTTP client."""
    inner = transport or _default_transport(purpose)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=GuardedTransport(inner, policy, tier, purpose),
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        headers={"user-agent": "localinfer", **(headers or {})},
        # Never pick up proxy settings from the environment: traffic must go where we say.
        trust_env=False,
        follow_redirects=False,
    )


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    return str(body)[:300]


# How servers say a prompt does not fit: llama-server's error type (with the counts),
# OpenAI's and vLLM's codes / words.
_CONTEXT_ERRORS = ("exceed_context_size_error", "context_length_exceeded")


def _context_exceeded(response: httpx.Response) -> tuple[int | None, int | None] | None:
    """(prompt tokens, context size) when a 400 says the prompt is too long."""
    if response.status_code != 400:
        return None
    try:
        err = response.json().get("error")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(err, dict) or not ({err.get("type"), err.get("code")} & set(_CONTEXT_ERRORS)
                                         or "maximum context length" in str(err.get("message"))):
        return None
    tokens, limit = err.get("n_prompt_tokens"), err.get("n_ctx")
    return (tokens if isinstance(tokens, int) else None, limit if isinstance(limit, int) else None)


def backend_error(exc: Exception, backend: str, base_url: str) -> BackendError:
    """Turn a transport or HTTP failure into one readable BackendError."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, httpx.ConnectError):
        return BackendError(f"cannot connect to {backend} at {base_url}: is the server running?",
                            backend=backend)
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeout(f"{backend} at {base_url} timed out ({type(exc).__name__})",
                              backend=backend)
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        too_long = _context_exceeded(exc.response)
        if too_long is not None:
            return ContextLengthExceeded(backend, *too_long, backend=backend)
        return BackendError(f"{backend} answered {status}: {_error_message(exc.response)}",
                            backend=backend, status=status)
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        return BackendError(f"{backend} at {base_url} closed the connection mid-response: "
                            "the answer is incomplete", backend=backend)
    if isinstance(exc, httpx.HTTPError):
        return BackendError(f"{backend} at {base_url}: {type(exc).__name__}: {exc}",
                            backend=backend)
    return BackendError(f"{backend}: {type(exc).__name__}: {exc}", backend=backend)


async def raise_for_status(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        response.raise_for_status()


async def iter_sse(response: httpx.Response, *, source: str = "the server") -> AsyncIterator[str]:
    """Yield the ``data:`` payloads of a server-sent-event stream, ending at ``[DONE]``.
    A stream that ends without ``[DONE]`` raises StreamTruncated after its last payload
    (a caller that accepts another end marker, e.g. a ``finish_reason``, catches it)."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                payload = "\n".join(data)
                data = []
                if payload.strip() == "[DONE]":
                    return
                yield payload
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        if "\n".join(data).strip() == "[DONE]":
            return
        yield "\n".join(data)
    raise StreamTruncated(f"{source} closed the stream before its end marker ([DONE]): "
                          "the answer is incomplete", before_first_token=False)


async def iter_ndjson(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Yield one JSON object per non-empty line (Ollama's streaming format)."""
    async for line in response.aiter_lines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                yield value
