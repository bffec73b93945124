"""Errors the gateway itself raises, and the one place any error becomes JSON.

Every ``LocalInferError`` already knows its HTTP status, OpenAI ``type`` and ``code``;
the two dialects only differ in the body's shape, so each is one small function.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..errors import LocalInferError, ModelNotFound, UsageError


class InvalidRequest(UsageError):
    """A malformed body: bad JSON, wrong types, a bad model name."""

    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class BadHeaders(UsageError):
    """Malformed request headers (a repeated Host or Origin)."""

    code = "bad_headers"


class Unauthorized(LocalInferError):
    http_status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(LocalInferError):
    """Refused by the browser-safety rules (Host, Origin, fetch metadata)."""

    http_status = 403
    error_type = "permission_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooLarge(LocalInferError):
    http_status = 413
    error_type = "invalid_request_error"
    code = "body_too_large"


class ServiceUnavailable(LocalInferError):
    http_status = 503
    error_type = "server_error"
    code = "too_many_connections"


class RouteNotFound(LocalInferError):
    http_status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(LocalInferError):
    http_status = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


def param_of(exc: LocalInferError) -> str | None:
    if isinstance(exc, ModelNotFound):
        return "model"
    return getattr(exc, "param", None)


def openai_error(exc: LocalInferError) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": exc.message, "type": exc.error_type,
                      "param": param_of(exc), "code": exc.code}}


def ollama_error(exc: LocalInferError) -> dict[str, Any]:
    """Ollama's error shape: ``{"error": "message"}`` (its client raises ResponseError)."""
    return {"error": exc.message}


def from_validation(err: ValidationError) -> InvalidRequest:
    """The first problem of a pydantic ValidationError, as one readable line."""
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in first["loc"])
    more = len(err.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    where = f"{loc}: " if loc else ""
    return InvalidRequest(f"invalid request body: {where}{first['msg']}{suffix}",
                          param=loc or None)
