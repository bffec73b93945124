"""One table from a failed HTTP exchange to localinfer's errors: what the client says
went wrong on the wire (``HTTPError`` and its kind) or what the server's status and body
say (a prompt too long, a model still loading, a request the server refused)."""

from __future__ import annotations

import json

from ..errors import (
    BackendError,
    BackendTimeout,
    ContextLengthExceeded,
    ModelLoading,
    UpstreamRejected,
)
from .transport import HTTPError


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
    """What an HTTP error status means."""
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
    """Turn a failed exchange into one readable BackendError."""
    if isinstance(exc, BackendError):
        return exc
    if not isinstance(exc, HTTPError):
        return BackendError(f"{backend}: {type(exc).__name__}: {exc}", backend=backend)
    message = _WIRE_MESSAGES.get(exc.kind)
    if exc.kind == "status" and exc.status is not None:
        return _status_error(exc.status, exc.body, exc.reason, backend)
    if exc.kind == "timeout":
        return BackendTimeout(f"{backend} at {base_url} timed out ({exc.detail})",
                              backend=backend)
    if message is not None:
        return BackendError(message.format(backend=backend, base_url=base_url),
                            backend=backend)
    return BackendError(f"{backend} at {base_url}: {exc.detail}", backend=backend)


_WIRE_MESSAGES = {
    "connect": "cannot connect to {backend} at {base_url}: is the server running?",
    "loopback_down": "cannot reach {backend} at {base_url}: the loopback interface is down "
                     "in this network namespace (plain `unshare -n` leaves it down: run "
                     "`ip link set lo up` in it)",
    "closed": "{backend} at {base_url} closed the connection mid-response: "
              "the answer is incomplete",
}
