"""What is known to be dangerous when an inference server listens beyond this machine,
as data: one row per danger, each a test over what the server said about itself.

Sources: CVE-2026-7482 (Ollama before 0.17.1: an unauthenticated ``/api/create`` reads
past a heap buffer); CVE-2026-21869 / GHSA-8947-pfff-2f3c (llama-server: a negative
``n_discard`` writes out of bounds; fixed by ggml-org/llama.cpp commit c78fb909b, PR
22267, merged 2026-04-23); llama.cpp's SECURITY.md (the router and the MCP CORS proxy
are not meant for untrusted networks); Docker Model Runner's CORS default "all"
(``docker desktop enable model-runner --cors``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .discovery.answers import Answers, answer

OLLAMA_FIXED: Final = (0, 17, 1)
# The first llama.cpp build (bNNNN) carrying commit c78fb909b. Not found in the public
# sources searched (release notes do not list it): None means "cannot tell from the
# build number", and the audit says so instead of guessing. Set it once known.
LLAMACPP_N_DISCARD_FIXED_BUILD: int | None = None
PROBE_ORIGIN: Final = "http://localinfer-audit.invalid"


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def llamacpp_build(text: str | None) -> int | None:
    """``b7100-1a2b3c4`` → 7100."""
    match = re.match(r"b(\d+)", text or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Seen:
    """What the audit learned of one exposed server."""

    kind: str
    version: str | None
    answers: Answers


def _old_ollama(s: Seen) -> str | None:
    got = version_tuple(s.version)
    if got is None or got >= OLLAMA_FIXED:
        return None
    return (f"Ollama {s.version} is before 0.17.1: CVE-2026-7482 lets anyone who reaches it "
            "read its memory through /api/create; upgrade")


def _n_discard(s: Seen) -> str | None:
    build = llamacpp_build(s.version)
    if build is None:
        return None
    fixed = LLAMACPP_N_DISCARD_FIXED_BUILD
    if fixed is None:
        return (f"llama.cpp build b{build}: cannot tell from the build number whether it has "
                "the fix for CVE-2026-21869 (n_discard out-of-bounds write; fixed by commit "
                "c78fb909b, 2026-04-23); builds before it are exploitable by anyone who "
                "reaches them")
    if build >= fixed:
        return None
    return (f"llama.cpp build b{build} is before b{fixed}: CVE-2026-21869 (n_discard "
            "out-of-bounds write) is exploitable by anyone who reaches it; upgrade")


def _router(s: Seen) -> str | None:
    if answer(s.answers, "/props").obj().get("role") != "router":
        return None
    return ("llama-server in router mode loads and unloads models on request; llama.cpp's "
            "SECURITY.md says it is not for untrusted networks")


def _mcp_proxy(s: Seen) -> str | None:
    got = answer(s.answers, "/cors-proxy")
    if got.status in (0, 404):
        return None
    return ("llama-server's MCP CORS proxy (/cors-proxy, --webui-mcp-proxy) fetches URLs "
            "for whoever asks; llama.cpp's SECURITY.md says it is not for untrusted networks")


def _open_cors(s: Seen) -> str | None:
    allowed = answer(s.answers, "/").headers.get("access-control-allow-origin", "")
    if allowed not in ("*", PROBE_ORIGIN):
        return None
    return ("CORS is open (Access-Control-Allow-Origin: " + allowed + "): any web page you "
            "visit can use it; set `docker desktop enable model-runner --cors none`")


@dataclass(frozen=True)
class Danger:
    kind: str
    paths: tuple[str, ...]  # what the test needs fetched (with PROBE_ORIGIN sent)
    test: Callable[[Seen], str | None]


DANGERS: tuple[Danger, ...] = (
    Danger("ollama", (), _old_ollama),
    Danger("llama.cpp", (), _n_discard),
    Danger("llama.cpp", ("/props",), _router),
    Danger("llama.cpp", ("/cors-proxy",), _mcp_proxy),
    Danger("docker-model-runner", ("/",), _open_cors),
)


def paths_for(kind: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for d in DANGERS if d.kind == kind for p in d.paths))


def dangers(seen: Seen) -> list[str]:
    return [msg for d in DANGERS if d.kind == seen.kind if (msg := d.test(seen)) is not None]
