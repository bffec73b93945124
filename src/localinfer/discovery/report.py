"""The stable JSON shape of discovered servers, as ``localinfer status --json`` prints it."""

from __future__ import annotations

from typing import Any

from ..types import ServerInfo
from .locked import NeedsKey


def status_json_servers(servers: list[ServerInfo]) -> list[dict[str, Any]]:
    """``[{"kind", "base_url", "version", "models": [{"id", "capabilities", "loaded",
    and "tools" where the server tells}],
    "latency_ms"}]``, plus ``"needs_key": true`` and ``"hint"`` for a server that
    refused for want of a key: keys documented in the README, so keep them stable."""
    return [
        {
            "kind": s.kind,
            "base_url": s.base_url,
            "version": s.version,
            "models": [{"id": m.id, "capabilities": list(m.capabilities), "loaded": m.loaded,
                        # only where the server tells (llama-server's /props)
                        **({"tools": m.tools} if m.tools is not None else {})}
                       for m in s.models],
            "latency_ms": round(s.latency_ms, 1),
            **({"needs_key": True, "hint": s.hint} if isinstance(s, NeedsKey) else {}),
        }
        for s in servers
    ]
