"""One small error hierarchy. Each error knows its CLI exit code and HTTP status,
so the CLI and the gateway turn it into one actionable line or one JSON error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .redact import redact

if TYPE_CHECKING:
    from .assets.disclosure import Disclosure


class LocalInferError(Exception):
    exit_code = 1
    http_status = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(self, message: str) -> None:
        message = redact(message)  # a provider's error may repeat the key it was sent
        super().__init__(message)
        self.message = message


class UsageError(LocalInferError):
    """The caller asked for something malformed."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_request_error"


class NoBackend(LocalInferError):
    """Nothing can answer. When fetching the default chat model would fix that,
    ``disclosure`` says what it costs (name, size, time, RAM fit: ``.lines()``), so a
    program can show it and offer the download; otherwise it is None."""

    exit_code = 3
    http_status = 503
    error_type = "service_unavailable"
    code = "no_backend"

    def __init__(self, message: str, *, disclosure: Disclosure | None = None) -> None:
        super().__init__(message)
        self.disclosure = disclosure


class ModelNotFound(LocalInferError):
    exit_code = 4
    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str, available: Sequence[str]) -> None:
        shown = ", ".join(available[:20]) or "none"
        more = f" (+{len(available) - 20} more)" if len(available) > 20 else ""
        super().__init__(f"model '{model}' not found; available: {shown}{more}")
        self.model = model
        self.available = list(available)


class BadModelFile(LocalInferError):
    exit_code = 5
    http_status = 422
    error_type = "invalid_request_error"
    code = "bad_model_file"


class ConsentRequired(LocalInferError):
    exit_code = 6
    http_status = 403
    error_type = "permission_error"
    code = "consent_required"


class SensitiveDataBlocked(LocalInferError):
    exit_code = 7
    http_status = 403
    error_type = "permission_error"
    code = "sensitive_local_only"


class EgressBlocked(LocalInferError):
    exit_code = 8
    http_status = 403
    error_type = "permission_error"
    code = "egress_blocked"


class BackendError(LocalInferError):
    """A backend failed. ``before_first_token`` tells the router it may fail over."""

    exit_code = 9
    http_status = 502
    error_type = "server_error"
    code = "backend_error"

    def __init__(self, message: str, *, backend: str = "", before_first_token: bool = True,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        self.before_first_token = before_first_token
        self.status = status


class ContextLengthExceeded(BackendError, UsageError):
    """The prompt does not fit the model's context window: the caller's to shorten, so
    a 400 (exit 2), and no failover (``before_first_token`` is False)."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"

    def __init__(self, model: str, tokens: int | None, limit: int | None, *,
                 backend: str = "") -> None:
        counts = (f"maximum context length is {limit} tokens, but the messages came to "
                  f"{tokens} tokens" if tokens and limit else "context window is too small "
                  "for these messages")
        super().__init__(
            f"{model}: this model's {counts}; shorten the messages or raise the context "
            "(LOCALINFER_EMBEDDED_CONTEXT for the embedded engine)",
            backend=backend, before_first_token=False, status=400)
        self.model, self.tokens, self.limit = model, tokens, limit
        self.param = "messages"


# What to do about a chat template that does not render tools, per tier.
TOOLS_FIX = {
    "local": "llama-server: start it with --jinja and a model or --chat-template-file "
             "whose template takes tools",
    "embedded": "the model would never see them; set embedded_chat_template (e.g. "
                "`chatml-tools` for ChatML models like SmolLM2) or run a GGUF whose template "
                "takes tools, e.g. Qwen2.5-Instruct, with `-m FILE.gguf`",
}


class ToolsNotRendered(UsageError):
    """``tools`` offered to a model whose chat template would drop them: refused, so the
    model never answers as if none were offered (a 400 naming ``tools``)."""

    def __init__(self, backend: str, model: str, tier: str) -> None:
        fix = TOOLS_FIX.get(tier, TOOLS_FIX["local"])
        super().__init__(
            f"{backend} does not support tool calls for '{model}': its chat template does "
            f"not render tools ({fix}); send the request without tools or name a model "
            "that supports them")
        self.param = "tools"


class UpstreamRejected(BackendError):
    """A backend refused the request as malformed (HTTP 400/413/422): the caller's to
    fix, so the same status with the backend's message, and no failover (another
    backend would be sent the same request)."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, message: str, *, backend: str = "", status: int = 400) -> None:
        super().__init__(message, backend=backend, before_first_token=False, status=status)
        self.http_status = status


class BackendTimeout(BackendError):
    http_status = 504
    code = "backend_timeout"


class ModelLoading(BackendError):
    """The server answered 503 because it is loading the model (llama-server's "Loading
    model", in router mode or at start): the backend retries it within the request's
    deadline, and the host is not marked down for it (it answered)."""

    http_status = 503
    error_type = "service_unavailable"
    code = "model_loading"


class StreamTruncated(BackendError):
    """The backend closed the connection before its own end marker (``[DONE]``, a
    ``finish_reason``, Ollama's ``done: true``): the answer is incomplete."""

    code = "stream_truncated"


class DownloadError(LocalInferError):
    """A model file could not be fetched (network, server, disk)."""

    exit_code = 10
    http_status = 502
    code = "download_failed"


class DiskFull(DownloadError):
    exit_code = 11
    http_status = 507
    code = "disk_full"


class NotCached(DownloadError):
    """The file is not on this machine and the caller did not allow a download."""

    exit_code = 12
    http_status = 409
    code = "model_not_cached"


class SandboxUnavailable(LocalInferError):
    """The sandbox extra is not installed, or a runtime file is missing or altered."""

    exit_code = 2
    http_status = 503
    error_type = "service_unavailable"
    code = "sandbox_unavailable"


class SandboxLimit(LocalInferError):
    """A sandboxed run hit its time, memory or fuel limit."""

    exit_code = 124
    http_status = 422
    error_type = "invalid_request_error"
    code = "sandbox_limit"


class Cancelled(LocalInferError):
    exit_code = 130
    http_status = 499
    code = "cancelled"
