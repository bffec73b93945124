"""Streams under faults: peek before 200, per-chunk timeout, error events, and
cancellation of upstream work when the client goes away.

The wire framing is a ``StreamEncoder`` (OpenAI's SSE, Ollama's NDJSON); everything
else here is the same for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import BackendError, BackendTimeout, LocalInferError
from ..types import ChatChunk
from .errors import openai_error
from .wire import dumps

log = logging.getLogger("localinfer.gateway")
T = TypeVar("T")

# How long closing an upstream stream may take once the client is gone.
CLOSE_GRACE = 5.0


class StreamEncoder(Protocol):
    media_type: str

    def chunk(self, chunk: ChatChunk) -> bytes:
        """Frame one chunk (may be b"" when the dialect folds it into the end)."""

    def end(self) -> bytes:
        """The closing frame(s) after the last chunk."""

    def error(self, exc: LocalInferError) -> bytes:
        """The frames that end a stream which failed after 200 was sent."""


class SSEEncoder:
    """OpenAI's stream: ``data: {chunk}`` events, then ``data: [DONE]``."""

    media_type = "text/event-stream"

    def chunk(self, chunk: ChatChunk) -> bytes:
        return b"data: " + dumps(chunk) + b"\n\n"

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, exc: LocalInferError) -> bytes:
        return b"data: " + dumps(openai_error(exc)) + b"\n\n" + self.end()


def timeout_error(seconds: float, what: str) -> BackendTimeout:
    return BackendTimeout(f"no {what} within {seconds:g} s (LOCALINFER_GATEWAY_TIMEOUT)")


async def aclose_quietly(stream: AsyncIterator[T]) -> None:
    """Close an upstream stream even from a cancelled task: closing is what stops the
    backend's generation, so it must not be skipped by the cancellation that caused it."""
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE):
        try:
            await close()
        except Exception:  # the stream is being abandoned anyway
            log.debug("error while closing an upstream stream", exc_info=True)


async def peek(stream: AsyncIterator[T], timeout: float) -> T | None:
    """The first item, read before committing to 200 so early failures (no backend,
    unknown model, timeouts) become proper HTTP errors. None for an empty stream."""
    try:
        with anyio.fail_after(timeout):
            return await anext(aiter(stream))
    except StopAsyncIteration:
        return None
    except TimeoutError:
        await aclose_quietly(stream)
        raise timeout_error(timeout, "first chunk") from None
    except BaseException:
        await aclose_quietly(stream)
        raise


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(receive: Receive, work: Callable[[], Awaitable[T]],
                           timeout: float) -> T | None:
    """Run ``work`` under ``timeout``; cancel it if the client disconnects first (then
    None: nobody is left to answer). Used for non-streamed requests, whose generation
    would otherwise run on for a client that gave up."""
    result: T | None = None
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await wait_for_disconnect(receive)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        # Errors are carried out of the task group by hand, so callers see the error
        # itself rather than an ExceptionGroup; cancellation stays inside it.
        try:
            with anyio.fail_after(timeout):
                result = await work()
        except TimeoutError:
            failure = timeout_error(timeout, "answer")
        except Exception as exc:
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


class ChunkStreamResponse(Response):
    """Sends an already-peeked stream: 200 and headers, the first chunk, the rest with
    an idle timeout, then the end frame; an error after 200 becomes an error frame."""

    def __init__(self, first: ChatChunk | None, rest: AsyncIterator[ChatChunk],
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
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await wait_for_disconnect(receive)
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await self._pump(send)
                tg.cancel_scope.cancel()
        finally:
            # Reached on completion, failure and client disconnect alike.
            await aclose_quietly(self.rest)

    async def _pump(self, send: Send) -> None:
        encoder = self.encoder

        async def body(data: bytes) -> None:
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            if self.first is not None:
                await body(encoder.chunk(self.first))
            iterator = aiter(self.rest)
            while True:
                with anyio.move_on_after(self.idle_timeout) as idle:
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        break
                if idle.cancelled_caught:
                    raise timeout_error(self.idle_timeout, "next chunk")
                await body(encoder.chunk(chunk))
            tail = encoder.end()
        except LocalInferError as exc:
            tail = encoder.error(exc)
        except Exception as exc:  # the status is sent; say it in-band
            log.exception("stream failed")
            tail = encoder.error(BackendError(f"stream failed: {type(exc).__name__}: {exc}",
                                              before_first_token=False))
        await send({"type": "http.response.body", "body": tail, "more_body": False})
