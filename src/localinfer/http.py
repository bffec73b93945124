"""The one HTTP layer: every outbound request localinfer makes goes through a client
built here, so timeouts, the egress guard and the egress record live in one place.
Two clients: ``make_client`` (httpx: probes, downloads, HTTPS providers, tests with a
mock transport) and ``Upstream`` (aiohttp directly: the inference calls to plain-HTTP
servers that every gateway request makes), both checked and recorded the same way.

``EgressPolicy`` decides before a connection is opened (offline mode refuses every
non-loopback destination) and is told after each request what crossed the wire.
It records scheme, host, port and path only: never query strings, headers or bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from .errors import (
    BackendError,
    BackendTimeout,
    ContextLengthExceeded,
    EgressBlocked,
    ModelLoading,
    StreamTruncated,
    UpstreamRejected,
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

    def check(self, url: httpx.URL, network: NetworkClass | None = None) -> None:
        """Refuse a destination before any connection is made; ``network``: its class,
        when the caller has it already (the direct client computes it once)."""
        if (network or network_class(url.host)) == "loopback":
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


def _record(policy: EgressPolicy, tier: Tier, purpose: Purpose, method: str, url: httpx.URL,
            path: str, sent: int, received: int, status: int | None,
            error: str | None) -> None:
    """One egress record, the same from the httpx clients and the direct client."""
    port = _port(url)
    policy.record(EgressRecord(
        time=time.time(), method=method, scheme=url.scheme, host=url.host,
        port=port, path=path, bytes_sent=sent, bytes_received=received,
        status=status, network=network_class(url.host), tier=tier,
        purpose=purpose, error=error,
        trust=policy.trust_class(url.host, port, tier),
        client=client_name(),
    ))


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
        _record(self._policy, self._tier, self._purpose, request.method, request.url,
                request.url.path, sent, received, status, error)

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


# -- the direct client: inference calls to plain-HTTP servers ------------------------------

UpstreamKind = Literal["connect", "timeout", "closed", "status", "other"]
# Connections kept per server, as httpx's default pool did before.
POOL_LIMIT = 100
# The most bytes one answer may bring (settings.max_response_bytes; the same default):
# an engine asked for per-token probabilities answered 300 MB to a 170-byte request.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class UpstreamError(Exception):
    """A failure of the direct client, sorted for ``backend_error`` (one message table)."""

    def __init__(self, kind: UpstreamKind, detail: str, *, status: int | None = None,
                 body: bytes = b"", reason: str = "") -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail
        self.status, self.body, self.reason = status, body, reason


def _upstream_kind(exc: BaseException) -> UpstreamKind | None:
    """Which kind of failure an aiohttp exception is; None for anything else."""
    import aiohttp

    # Order matters: a connect timeout is a timeout, a refused connect a connect error.
    for kind, types in (
        ("timeout", (TimeoutError, aiohttp.ServerTimeoutError)),
        ("connect", (aiohttp.ClientConnectorError,)),
        ("closed", (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                    aiohttp.ClientOSError)),
        ("other", (aiohttp.ClientError,)),
    ):
        if isinstance(exc, types):
            return kind  # type: ignore[return-value]
    return None


def json_bytes(value: Any) -> bytes:
    """A request body: orjson, or the standard library for what orjson refuses
    (integers past 64 bits in a pass-through option)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


class Upstream:
    """aiohttp directly, for the calls every gateway request makes to a plain-HTTP
    server (chat, streamed chat): no httpx request and response models and no transport
    adapter between us and aiohttp — about half the gateway's CPU went there
    (docs/benchmarks.md). Connections are kept alive and reused.

    The privacy promise is the same as ``make_client``'s: the egress policy is asked
    before every request (not only when a connection opens, so offline mode or a broken
    ledger stops a pooled connection too) and every request is recorded — method, host,
    port, path, bytes each way, status or error. No redirects, no proxy from the
    environment, no cookies kept, no ``Accept-Encoding`` (so the bytes counted are the
    bytes sent)."""

    def __init__(self, policy: EgressPolicy, *, tier: Tier, base_url: str,
                 connect_timeout: float = 3.0, read_timeout: float | None = 600.0,
                 headers: dict[str, str] | None = None, purpose: Purpose = "backend",
                 max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._policy, self._tier, self._purpose = policy, tier, purpose
        self.max_response_bytes = max_response_bytes
        self._base = base_url.rstrip("/")
        self._url = httpx.URL(self._base)
        self._network = network_class(self._url.host)
        self._prefix = self._url.path.rstrip("/")
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._headers = {"user-agent": "localinfer", "content-type": "application/json",
                         **(headers or {})}
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._targets: dict[str, Any] = {}
        self._timeouts: dict[float | None, Any] = {}

    def _open(self) -> Any:
        # Made on first use: an aiohttp session belongs to the running event loop (a
        # backend used from a second loop, e.g. two asyncio.run calls, gets its own).
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            import aiohttp

            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
                headers=self._headers, trust_env=False,
                skip_auto_headers=("Accept-Encoding",),
                cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def _target(self, path: str) -> Any:
        # Parsed once per path, not once per request.
        target = self._targets.get(path)
        if target is None:
            import yarl

            target = self._targets[path] = yarl.URL(self._base + path)
        return target

    def _timeout(self, read: float | None) -> Any:
        timeout = self._timeouts.get(read)
        if timeout is None:
            import aiohttp

            timeout = self._timeouts[read] = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout, sock_read=read)
        return timeout

    def _record(self, path: str, sent: int, received: int, status: int | None,
                error: str | None) -> None:
        _record(self._policy, self._tier, self._purpose, "POST", self._url,
                self._prefix + path, sent, received, status, error)

    async def post(self, path: str, body: bytes, *,
                   read_timeout: float | None = None) -> bytes:
        """POST ``body``; the whole answer, or UpstreamError (a status >= 400 too)."""
        exchange = Exchange(self, path, body, read_timeout)
        async with exchange:
            return await exchange.read()

    def stream(self, path: str, body: bytes, *, read_timeout: float | None = None) -> Exchange:
        """``async with upstream.stream(...) as exchange:`` then ``exchange.lines()``;
        a status >= 400 raises UpstreamError on entry."""
        return Exchange(self, path, body, read_timeout)

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


class Exchange:
    """One request and its answer through ``Upstream``: checked on entry, recorded on
    exit (bytes counted as they are read), aiohttp failures turned into UpstreamError."""

    def __init__(self, upstream: Upstream, path: str, body: bytes,
                 read_timeout: float | None) -> None:
        self._up, self._path, self._body = upstream, path, body
        self._read_timeout = upstream._read_timeout if read_timeout is None else read_timeout
        self.status: int | None = None
        self.received = 0
        self._context: Any = None
        self._response: Any = None

    async def __aenter__(self) -> Exchange:
        up = self._up
        up._policy.check(up._url, up._network)
        try:
            self._context = up._open().post(
                up._target(self._path), data=self._body, allow_redirects=False,
                timeout=up._timeout(self._read_timeout))
            response = self._response = await self._context.__aenter__()
            self.status = response.status
            if response.status >= 400:
                body = await self.read()
                raise UpstreamError("status", f"HTTP {response.status}",
                                    status=response.status, body=body,
                                    reason=response.reason or "")
        except BaseException as exc:
            converted = _converted(exc)
            await self.__aexit__(type(converted), converted, None)
            if converted is exc:
                raise
            raise converted from exc
        return self

    async def read(self) -> bytes:
        try:
            parts: list[bytes] = []
            async for data in self._response.content.iter_any():
                self._count(len(data))
                parts.append(data)
        except Exception as exc:
            converted = _converted(exc)
            if converted is exc:
                raise
            raise converted from exc
        return b"".join(parts)

    def _count(self, size: int) -> None:
        self.received += size
        if self.received > self._up.max_response_bytes:
            # Raised inside the read: leaving the exchange closes the connection, which
            # is what stops the server generating.
            raise UpstreamError("other", f"the answer passed {self._up.max_response_bytes} "
                                "bytes (max_response_bytes) and was cut off")

    async def lines(self) -> AsyncIterator[bytes]:
        """The answer's lines without their line ends (``\\n`` or ``\\r\\n``; a bare
        ``\\r`` is not a line end here: no OpenAI-compatible server sends one)."""
        content = self._response.content
        rest = b""
        try:
            async for data in content.iter_any():
                self._count(len(data))
                if b"\n" not in data:
                    rest += data
                    continue
                *complete, rest = (rest + data).split(b"\n") if rest else data.split(b"\n")
                for line in complete:
                    yield line[:-1] if line.endswith(b"\r") else line
        except Exception as exc:
            converted = _converted(exc)
            if converted is exc:
                raise
            raise converted from exc
        if rest:
            yield rest[:-1] if rest.endswith(b"\r") else rest

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: Any) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        try:
            if self._response is not None:
                # An answer not read to the end closes its connection: that is what
                # stops a server generating for a client that left.
                await context.__aexit__(exc_type, exc, tb)
        finally:
            self._up._record(self._path, len(self._body), self.received, self.status,
                             _wire_error(exc))


def _converted(exc: BaseException) -> BaseException:
    if isinstance(exc, UpstreamError):
        return exc
    kind = _upstream_kind(exc)
    if kind is None:
        return exc
    detail = type(exc).__name__ if kind == "timeout" else f"{type(exc).__name__}: {exc}"
    converted = UpstreamError(kind, detail)
    converted.__cause__ = exc
    return converted


def _wire_error(exc: BaseException | None) -> str | None:
    """What the ledger calls a failure: the wire's (a refused connect, a reset, a
    timeout, a cancelled read), as the httpx transport records it; not an HTTP status
    (recorded as such) nor the caller's own exceptions after a good answer."""
    if isinstance(exc, UpstreamError):
        if exc.kind == "status":
            return None
        return type(exc.__cause__).__name__ if exc.__cause__ is not None else exc.kind
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError"
    return None


def _error_text(content: bytes, reason: str) -> str:
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return content.decode("utf-8", "replace")[:300].strip() or reason
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    return str(body)[:300]


# How servers say a prompt does not fit: llama-server's error type (with the counts),
# OpenAI's and vLLM's codes / words.
_CONTEXT_ERRORS = ("exceed_context_size_error", "context_length_exceeded")


def _context_exceeded(status: int, content: bytes) -> tuple[int | None, int | None] | None:
    """(prompt tokens, context size) when a 400 says the prompt is too long."""
    if status != 400:
        return None
    try:
        err = json.loads(content).get("error")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(err, dict) or not ({err.get("type"), err.get("code")} & set(_CONTEXT_ERRORS)
                                         or "maximum context length" in str(err.get("message"))):
        return None
    tokens, limit = err.get("n_prompt_tokens"), err.get("n_ctx")
    return (tokens if isinstance(tokens, int) else None, limit if isinstance(limit, int) else None)


# How a server says "503 because the model is still loading, ask again": llama-server's
# message, in router mode (a model it had not loaded) and while it starts with -m.
_LOADING_MESSAGES = ("loading model",)


def _model_loading(status: int, content: bytes) -> bool:
    """Whether a 503 says the model is loading (retried), not that the server is sick."""
    if status != 503:
        return False
    message = _error_text(content, "").lower()
    return any(words in message for words in _LOADING_MESSAGES)


# Statuses that say the request is malformed: a 400 to the client with the server's
# message, never "every backend failed" (another backend would get the same request).
CLIENT_MISTAKES = frozenset({400, 413, 422})


def _status_error(status: int, content: bytes, reason: str, backend: str) -> BackendError:
    """An HTTP error status, the same from both clients."""
    too_long = _context_exceeded(status, content)
    if too_long is not None:
        return ContextLengthExceeded(backend, *too_long, backend=backend)
    if status in CLIENT_MISTAKES:  # the request itself is wrong: the client's to fix
        return UpstreamRejected(f"{backend} refused the request ({status}): "
                                f"{_error_text(content, reason)}", backend=backend, status=status)
    error = ModelLoading if _model_loading(status, content) else BackendError
    return error(f"{backend} answered {status}: {_error_text(content, reason)}",
                 backend=backend, status=status)


def backend_error(exc: Exception, backend: str, base_url: str) -> BackendError:
    """Turn a transport or HTTP failure into one readable BackendError."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc, backend, base_url)
    if isinstance(exc, httpx.ConnectError):
        return BackendError(f"cannot connect to {backend} at {base_url}: is the server running?",
                            backend=backend)
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeout(f"{backend} at {base_url} timed out ({type(exc).__name__})",
                              backend=backend)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return _status_error(response.status_code, response.content, response.reason_phrase,
                             backend)
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        return BackendError(f"{backend} at {base_url} closed the connection mid-response: "
                            "the answer is incomplete", backend=backend)
    if isinstance(exc, httpx.HTTPError):
        return BackendError(f"{backend} at {base_url}: {type(exc).__name__}: {exc}",
                            backend=backend)
    return BackendError(f"{backend}: {type(exc).__name__}: {exc}", backend=backend)


def _upstream_error(exc: UpstreamError, backend: str, base_url: str) -> BackendError:
    """``backend_error`` for the direct client: the same messages as its httpx twin."""
    if exc.kind == "connect":
        return BackendError(f"cannot connect to {backend} at {base_url}: is the server running?",
                            backend=backend)
    if exc.kind == "timeout":
        return BackendTimeout(f"{backend} at {base_url} timed out ({exc.detail})",
                              backend=backend)
    if exc.kind == "status" and exc.status is not None:
        return _status_error(exc.status, exc.body, exc.reason, backend)
    if exc.kind == "closed":
        return BackendError(f"{backend} at {base_url} closed the connection mid-response: "
                            "the answer is incomplete", backend=backend)
    return BackendError(f"{backend} at {base_url}: {exc.detail}", backend=backend)


async def raise_for_status(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        response.raise_for_status()


async def iter_sse(response: httpx.Response, *, source: str = "the server") -> AsyncIterator[str]:
    """Yield the ``data:`` payloads of a server-sent-event stream, ending at ``[DONE]``.
    A stream that ends without ``[DONE]`` raises StreamTruncated after its last payload
    (a caller that accepts another end marker, e.g. a ``finish_reason``, catches it)."""

    async def lines() -> AsyncIterator[bytes]:
        async for line in response.aiter_lines():
            yield line.encode()

    async for payload in sse_payloads(lines(), source=source):
        yield payload.decode("utf-8", "replace")


async def sse_payloads(lines: AsyncIterator[bytes], *,
                       source: str = "the server") -> AsyncIterator[bytes]:
    """``iter_sse`` over lines of bytes (no line ends), yielding payload bytes: the
    direct client's path, where the bytes may be sent on untouched."""
    data: list[bytes] = []
    async for line in lines:
        if not line:
            if data:
                payload = data[0] if len(data) == 1 else b"\n".join(data)
                data = []
                if payload.strip() == b"[DONE]":
                    return
                yield payload
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        if b"\n".join(data).strip() == b"[DONE]":
            return
        yield b"\n".join(data)
    raise StreamTruncated(f"{source} closed the stream before its end marker ([DONE]): "
                          "the answer is incomplete", before_first_token=False)


async def iter_ndjson(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Yield one JSON object per non-empty line (Ollama's streaming format)."""
    async for line in response.aiter_lines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                yield value
