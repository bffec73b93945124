"""What one gateway request carries through the layers below it: which client token
made it (the ledger records the name, never the secret) and which host served it
(the gateway's ``x-localinfer-host`` header).

The gateway sets one mutable ``RequestTrace`` in a context variable before any route
runs; tasks a route spawns copy the context and so share the same object.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass
class RequestTrace:
    client: str | None = None
    host: str | None = None


_CURRENT: ContextVar[RequestTrace | None] = ContextVar("localinfer_request", default=None)


def begin(client: str | None) -> tuple[RequestTrace, Token[RequestTrace | None]]:
    trace = RequestTrace(client=client)
    return trace, _CURRENT.set(trace)


def end(token: Token[RequestTrace | None]) -> None:
    _CURRENT.reset(token)


def current() -> RequestTrace | None:
    return _CURRENT.get()


def served_by(host: str) -> None:
    trace = _CURRENT.get()
    if trace is not None:
        trace.host = host


def client_name() -> str | None:
    trace = _CURRENT.get()
    return trace.client if trace is not None else None
