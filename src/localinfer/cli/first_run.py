"""First run of `localinfer chat`: no chat model and no server is a question, not a dead
end. The default model's cost is shown and a yes fetches it, as `ollama run` pulls on
first use; without a terminal (and without --yes) one line names the `pull` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from ..assets.progress import format_bytes
from ..assets.pull import Limits, apull
from ..errors import DownloadError, EgressBlocked, NoBackend
from ..settings import Settings
from ..syncbridge import run_sync
from .common import confirm, note
from .progress import ProgressBar

T = TypeVar("T")


def with_first_run(answer: Callable[[], T], args: argparse.Namespace,
                   settings: Settings) -> T:
    """``answer()``; when it finds nothing to answer with and the default model would
    fix that, offer it (fetch on yes) and answer again. Raises NoBackend otherwise."""
    try:
        return answer()
    except NoBackend as exc:
        offer_default_model(exc, args, settings)
    return answer()


def _offline(name: str, size: str) -> str:
    return (f"offline: no chat model is on this machine and no server answers; when "
            f"online, `localinfer pull {name}` fetches the default model ({size}), or "
            "pass -m FILE.gguf")


def offer_default_model(exc: NoBackend, args: argparse.Namespace,
                        settings: Settings) -> None:
    """Return once the default model is here; raise NoBackend (exit 3) when it is not
    fetched: declined, no terminal to ask on, offline."""
    info = exc.disclosure
    if info is None:
        raise exc
    size = format_bytes(info.download_size or info.size)
    if settings.offline:
        raise NoBackend(_offline(info.name, size), disclosure=info) from None
    assume = bool(getattr(args, "yes", False)) or settings.assume_yes
    terminal = sys.stdin.isatty() and sys.stderr.isatty()
    if not assume and not terminal:
        raise NoBackend(f"no chat model on this machine and no server answers: run "
                        f"`localinfer pull {info.name}` ({size}), or chat --yes, or pass "
                        "-m FILE.gguf, or start a server", disclosure=info) from None
    note("No chat model on this machine and no local server. The default model:")
    for line in info.lines():
        note(line)
    if not assume and not confirm("Download it now?"):
        raise NoBackend(f"nothing downloaded; `localinfer pull {info.name}` fetches it "
                        "later, or pass -m FILE.gguf", disclosure=info) from None
    bar = ProgressBar(sys.stderr, live=sys.stderr.isatty())
    try:
        run_sync(lambda: apull(info.name, settings, progress=bar,
                               limits=Limits(refuse_unknown_size=not terminal)))
    except EgressBlocked as failed:
        if "offline" in failed.message:
            raise NoBackend(_offline(info.name, size), disclosure=info) from None
        raise
    except DownloadError as failed:
        if "cannot connect" in failed.message:  # no network: say so, not "failed"
            raise NoBackend(_offline(info.name, size), disclosure=info) from None
        raise
    finally:
        bar.close()
    note(f"[localinfer] {info.name} is here; answering")
