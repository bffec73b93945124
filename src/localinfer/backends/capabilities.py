"""What a backend can do with a chat request, as data, and the one check against it.

Each backend answers ``capabilities(model, needs)``: its server kind's row (``KINDS``),
narrowed by what it listed for that model (llama.cpp's template caps), and by what only
it knows (the embedded engine's context and slots). ``refusal`` checks a request against
them; the router calls it when it chooses a candidate (router.py), so the gateway's routes
and the library refuse the same requests with the same errors. A fact left ``None`` is
not known: the request passes, and the serving engine honours or refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from ..errors import ToolsNotRendered, UsageError
from ..request_fields import FieldRefused
from ..types import ChatRequest, ModelInfo, Tier

# What a request may rely on; a backend told a need may find out a fact it does not know
# yet (the embedded engine asks its template caps once), never one the request does not use.
Need = Literal["tools", "choices", "logprobs", "json_schema", "context"]


@dataclass(frozen=True)
class Capabilities:
    tools: bool | None = None  # passes ``tools`` to the model (its template renders them)
    max_choices: int | None = None  # the largest ``n`` it serves
    logprobs: bool | None = None  # answers ``logprobs``
    json_schema: bool | None = None  # honours ``response_format`` json_schema
    context: int | None = None  # tokens one request may span (``max_tokens`` included)
    context_setting: str | None = None  # the setting that raises ``context``, if ours

    def for_model(self, model: ModelInfo | None) -> Capabilities:
        """Narrowed by what the backend listed for ``model`` (None: nothing listed)."""
        if model is None or (model.tools is None and model.context is None):
            return self
        return replace(self, tools=self.tools if model.tools is None else model.tools,
                       context=self.context if model.context is None else model.context)


UNKNOWN: Final = Capabilities()

# Rows by server kind (discovery/fingerprints.py names the kinds); a kind not here is
# UNKNOWN. Only facts with a source: a guess would refuse what a server can do.
KINDS: Final[dict[str, Capabilities]] = {
    # Ollama's OpenAI API has no ``n`` (openai/openai.go, ChatCompletionRequest): it
    # answers one choice whatever is asked.
    "ollama": Capabilities(max_choices=1),
}


def capabilities_of(kind: str) -> Capabilities:
    return KINDS.get(kind, UNKNOWN)


@dataclass(frozen=True)
class Where:
    """Who would serve the request, for the refusal's words."""

    backend: str
    model: str
    tier: Tier


def _extra(request: ChatRequest, name: str) -> Any:
    return (request.model_extra or {}).get(name)


def _choices(request: ChatRequest) -> int:
    n = _extra(request, "n")
    return n if isinstance(n, int) and not isinstance(n, bool) else 1


def _json_schema(request: ChatRequest) -> bool:
    fmt = request.response_format
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def _budget(request: ChatRequest) -> tuple[str, int] | None:
    for name in ("max_tokens", "max_completion_tokens"):
        wanted = getattr(request, name, None)
        if isinstance(wanted, int):
            return name, wanted
    return None


def needs(request: ChatRequest) -> frozenset[Need]:
    """The capabilities ``request`` relies on."""
    found: set[Need] = set()
    if request.tools:
        found.add("tools")
    if _choices(request) > 1:
        found.add("choices")
    if _extra(request, "logprobs") is True:
        found.add("logprobs")
    if _json_schema(request):
        found.add("json_schema")
    if _budget(request) is not None:
        found.add("context")
    return frozenset(found)


# -- the rules: one per need, each the refusal when the capability says no ---------------

Rule = Callable[[ChatRequest, Capabilities, Where], UsageError | None]


def _tools(request: ChatRequest, caps: Capabilities, where: Where) -> UsageError | None:
    return ToolsNotRendered(where.backend, where.model, where.tier) \
        if caps.tools is False else None


def _n(request: ChatRequest, caps: Capabilities, where: Where) -> UsageError | None:
    most, n = caps.max_choices, _choices(request)
    if most is None or n <= most:
        return None
    return FieldRefused(f"n={n}: {where.backend} answers at most {most} choice(s) per request "
                        f"for '{where.model}'; send several requests", param="n")


def _logprobs(request: ChatRequest, caps: Capabilities, where: Where) -> UsageError | None:
    if caps.logprobs is not False:
        return None
    return FieldRefused(f"logprobs: {where.backend} does not return log probabilities for "
                        f"'{where.model}'", param="logprobs")


def _schema(request: ChatRequest, caps: Capabilities, where: Where) -> UsageError | None:
    if caps.json_schema is not False:
        return None
    return FieldRefused(f"response_format json_schema: {where.backend} does not constrain "
                        f"'{where.model}' to a schema; use json_object or no format",
                        param="response_format")


def _context(request: ChatRequest, caps: Capabilities, where: Where) -> UsageError | None:
    budget, limit = _budget(request), caps.context
    if budget is None or limit is None or budget[1] <= limit:
        return None
    name, wanted = budget
    setting = f", {caps.context_setting}" if caps.context_setting else ""
    err = UsageError(f"{where.backend}: {name}={wanted} is more than {where.model}'s context "
                     f"({limit} tokens{setting}); ask for at most {limit}")
    err.param = name  # type: ignore[attr-defined]  # the error JSON names it
    return err


RULES: Final[dict[Need, Rule]] = {
    "tools": _tools, "choices": _n, "logprobs": _logprobs, "json_schema": _schema,
    "context": _context,
}


def refusal(request: ChatRequest, wants: frozenset[Need], caps: Capabilities,
            where: Where) -> UsageError | None:
    """Why ``where`` cannot serve ``request`` (which relies on ``wants``: ``needs(request)``),
    or None: the one check, in RULES' order. The router skips a candidate it refuses and
    raises the first refusal when no candidate is left."""
    for need, rule in RULES.items():
        if need in wants:
            err = rule(request, caps, where)
            if err is not None:
                return err
    return None
