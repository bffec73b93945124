"""Streams under faults: peek before 200, per-chunk timeout, error events, and
cancellation of upstream work when the client goes away.

The wire framing is a ``StreamEncoder`` (OpenAI's SSE, Ollama's NDJSON); everything
else here is the same for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..backends.passthrough import wire_bytes
from ..errors import BackendError, BackendTimeout, LocalInferError
from ..types import ChatChunk, ChatStream, Usage
from .errors import openai_error
from .wire import dumps

log = logging.getLogger("localinfer.gateway")
T = TypeVar("T")

# How long closing an upstream stream may take once the client is gone.
CLOSE_GRACE = 5.0
# Seconds between re-checks of the client's token while an open stream waits (remote.py
# re-checks consent the same way); at each chunk it is re-checked too.
REVOKE_CHECK = 0.25
# The ASGI scope key under which the security middleware hands a revocable grant (a
# per-client token) to the routes; absent when nothing can be revoked at run time.
GRANT_KEY = "localinfer.grant"
# The ASGI scope key holding the loop time by which a stream must have ended (set when
# the gateway starts reading it: ``Gateway.peek``, from ``request_deadline``).
DEADLINE_KEY = "localinfer.deadline"


class Revocable(Protocol):
    """What let a request in, when it can be withdrawn while the answer streams."""

    def valid(self) -> bool:
        """Still granted? Called on the event loop at every chunk: keep it cheap."""

    def revoked(self) -> LocalInferError:
        """The error that ends a stream whose grant was withdrawn."""


class StreamEncoder(Protocol):
    media_type: str

    def chunk(self, chunk: ChatChunk) -> bytes:
        """Frame one chunk (may be b"" when the dialect folds it into the end)."""

    def end(self) -> bytes:
        """The closing frame(s) after the last chunk."""

    def error(self, exc: LocalInferError) -> bytes:
        """The frames that end a stream which failed after 200 was sent."""


def wants_usage(stream_options: Any) -> bool:
    """OpenAI's ``stream_options: {"include_usage": true}``."""
    return isinstance(stream_options, dict) and stream_options.get("include_usage") is True


class SSEEncoder:
    """OpenAI's stream: ``data: {chunk}`` events, then ``data: [DONE]``.

    With ``include_usage`` (``stream_options.include_usage``), usage goes in a separate
    last chunk with ``choices: []``, as OpenAI's spec says, whatever chunk the backend
    put it on (the embedded tier puts it on the finishing chunk). Without it, a backend's
    usage stays where the backend put it (lenient readers such as localinfer.js use it)."""

    media_type = "text/event-stream"

    def __init__(self, *, include_usage: bool = False) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.pieces = 0
        self.last: ChatChunk | None = None

    def chunk(self, chunk: ChatChunk) -> bytes:
        if not self.include_usage:
            return self.frame(chunk)
        if chunk.usage is not None:
            self.usage = chunk.usage
            chunk = chunk.model_copy(update={"usage": None})  # a copy: no server bytes
        self.last = chunk
        if not chunk.choices:
            return b""  # a usage-only chunk from upstream: sent once, at the end
        self.pieces += sum(1 for c in chunk.choices if c.delta.content)
        return self.frame(chunk)

    def frame(self, chunk: ChatChunk) -> bytes:
        # The server's own bytes when nothing needs translating (backends/passthrough).
        return b"data: " + (wire_bytes(chunk) or dumps(chunk)) + b"\n\n"

    def usage_chunk(self) -> bytes:
        last = self.last
        if not self.include_usage or last is None:
            return b""
        usage = self.usage or Usage(completion_tokens=self.pieces)
        if not usage.total_tokens:
            usage = usage.model_copy(
                update={"total_tokens": usage.prompt_tokens + usage.completion_tokens})
        final = {"id": last.id, "object": last.object, "created": last.created,
                 "model": last.model, "choices": [],
                 "usage": usage.model_dump(mode="json", exclude_none=True)}
        return b"data: " + dumps(final) + b"\n\n"

    def end(self) -> bytes:
        return self.usage_chunk() + b"data: [DONE]\n\n"

    def error(self, exc: LocalInferError) -> bytes:
        return b"data: " + dumps(openai_error(exc)) + b"\n\n" + b"data: [DONE]\n\n"


def timeout_error(seconds: float, what: str) -> BackendTimeout:
    return BackendTimeout(f"no {what} within {seconds:g} s (LOCALINFER_GATEWAY_TIMEOUT)")


def deadline_error(seconds: float) -> BackendTimeout:
    return BackendTimeout(f"the stream ran past its request deadline of {seconds:g} s "
                          "(LOCALINFER_REQUEST_DEADLINE); the upstream was stopped")


async def aclose_quietly(stream: AsyncGenerator[T, None]) -> None:
    """Close an upstream stream even from a cancelled task: closing is what stops the
    backend's generation, so it must not be skipped by the cancellation that caused it."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE):
        try:
            await stream.aclose()
        except Exception:  # the stream is being abandoned anyway
            log.debug("error while closing an upstream stream", exc_info=True)


# Timeouts and disconnects cancel upstream work with plain asyncio cancellation, which
# is delivered once: the backend's own cleanup (telling the llama.cpp worker to stop
# between two tokens, closing an HTTP stream) may then still await. anyio's cancel
# scopes would re-cancel every await of that cleanup until it gave up.
async def within(timeout: float, work: Awaitable[T]) -> T:
    async with asyncio.timeout(timeout):
        return await work


async def peek(stream: AsyncGenerator[T, None], timeout: float) -> T | None:
    """The first item, read before committing to 200 so early failures (no backend,
    unknown model, timeouts) become proper HTTP errors. None for an empty stream."""
    try:
        return await within(timeout, anext(aiter(stream)))
    except StopAsyncIteration:
        return None
    except TimeoutError:
        await aclose_quietly(stream)
        raise timeout_error(timeout, "first chunk") from None
    except BaseException:
        await aclose_quietly(stream)
        raise


class DisconnectWatch:
    """``async with DisconnectWatch(receive):`` cancels the current task (once) if the
    client disconnects, and turns that cancellation into an ordinary exit (``gone``).

    The work stays in the request's own task: running it in a helper task instead
    costs ~100 µs per request (anyio and httpcore set up per-task state again)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.gone = False

    async def __aenter__(self) -> DisconnectWatch:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        # The body has been read, so the next message is the disconnect.
        self._watch = asyncio.ensure_future(self._receive())
        self._watch.add_done_callback(self._on_message)
        return self

    def _on_message(self, message: asyncio.Future[Any]) -> None:
        if message.cancelled() or message.exception() is not None:
            return
        if message.result().get("type") == "http.disconnect":
            self.gone = True
            self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        self._watch.remove_done_callback(self._on_message)
        self._watch.cancel()
        if not self.gone:
            return False
        if exc_type is None or not issubclass(exc_type, asyncio.CancelledError):
            # The work ended just as the client left: take the cancellation now,
            # rather than at the next await of whoever called us.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        if sys.version_info >= (3, 11) and self._task.cancelling():
            self._task.uncancel()
        return True  # nobody is left to answer


class RevocationWatch:
    """``async with RevocationWatch(grant) as watch:`` ends the body with
    ``grant.revoked()`` once the grant is withdrawn: ``watch.check()`` at each chunk, and
    a timer every REVOKE_CHECK s that cancels the task (once) while the upstream is
    silent. As with DisconnectWatch the stream stays in the request's own task: moving
    it to a helper task (remote.py's consent check can, it opens its stream there) would
    resume an already-started upstream generator in another task. No grant: a no-op."""

    def __init__(self, grant: Revocable | None) -> None:
        self.grant = grant
        self.fired = False
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> RevocationWatch:
        if self.grant is not None:
            task = asyncio.current_task()
            assert task is not None
            self._task = task
            self._arm()
        return self

    def _arm(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(REVOKE_CHECK, self._tick)

    def _tick(self) -> None:
        assert self.grant is not None
        if self.grant.valid():
            self._arm()
            return
        self.fired = True
        self._task.cancel()

    def check(self) -> None:
        if self.grant is not None and not self.grant.valid():
            raise self.grant.revoked()

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        if not self.fired:
            return False
        assert self.grant is not None
        if exc_type is None or not issubclass(exc_type, asyncio.CancelledError):
            # The body ended just as the timer fired: take that cancellation here.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        self._task.uncancel()
        raise self.grant.revoked()


async def until_disconnect(receive: Receive, work: Callable[[], Awaitable[T]],
                           timeout: float) -> T | None:
    """``work()`` under ``timeout``, cancelled if the client disconnects first (then
    None: nobody is left to answer). For non-streamed requests, whose generation would
    otherwise run on for a client that gave up."""
    result: T | None = None
    async with DisconnectWatch(receive) as watch:
        try:
            result = await within(timeout, work())
        except TimeoutError:
            raise timeout_error(timeout, "answer") from None
    return None if watch.gone else result


class ChunkStreamResponse(Response):
    """Sends an already-peeked stream: 200 and headers, the first chunk, the rest with
    an idle timeout, then the end frame; an error after 200 becomes an error frame."""

    def __init__(self, first: ChatChunk | None, rest: ChatStream,
                 encoder: StreamEncoder, headers: dict[str, str], idle_timeout: float) -> None:
        # Not Response.__init__: that would declare a Content-Length of 0.
        self.status_code = 200
        self.media_type = encoder.media_type
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
        self.first = first
        self.rest = rest
        self.encoder = encoder
        self.idle_timeout = idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async with DisconnectWatch(receive):
                await self._pump(send, scope.get(GRANT_KEY), scope.get(DEADLINE_KEY))
        finally:
            # Reached on completion, failure and client disconnect alike.
            await aclose_quietly(self.rest)

    async def _pump(self, send: Send, grant: Revocable | None,
                    ends_at: tuple[float, float] | None) -> None:
        encoder = self.encoder

        async def body(data: bytes) -> None:
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            # A revoked client token ends the stream like an upstream failure would.
            async with RevocationWatch(grant) as revocation:
                if self.first is not None:
                    await body(encoder.chunk(self.first))
                await self._rest(body, revocation.check, ends_at)
            tail = encoder.end()
        except LocalInferError as exc:
            tail = encoder.error(exc)
        except Exception as exc:  # the status is sent; say it in-band
            log.exception("stream failed")
            tail = encoder.error(BackendError(f"stream failed: {type(exc).__name__}: {exc}",
                                              before_first_token=False))
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _rest(self, body: Callable[[bytes], Awaitable[None]],
                    check: Callable[[], None], ends_at: tuple[float, float] | None) -> None:
        """The chunks after the first. ``ends_at``: (loop time, seconds) of the request
        deadline, which bounds the whole stream: waits for a chunk end at it, and a chunk
        sent past it is the last."""
        # One timer for the whole stream, moved before each wait for the next chunk
        # and lifted while the chunk is sent (a slow reader is not an idle backend):
        # a fresh asyncio.timeout per chunk cost more than framing the chunk.
        loop = asyncio.get_running_loop()
        iterator = aiter(self.rest)
        end = ends_at[0] if ends_at is not None else float("inf")
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    deadline.reschedule(min(loop.time() + self.idle_timeout, end))
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        return
                    deadline.reschedule(None)
                    check()
                    await body(self.encoder.chunk(chunk))
                    if ends_at is not None and loop.time() >= end:
                        raise deadline_error(ends_at[1])
        except TimeoutError:
            if ends_at is not None and loop.time() >= end:
                raise deadline_error(ends_at[1]) from None
            raise timeout_error(self.idle_timeout, "next chunk") from None
