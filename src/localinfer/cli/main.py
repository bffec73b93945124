"""Entry point: one argparse tree, each command group in its own module.

A command module exposes ``register(subparsers)``; its parsers set ``func`` to a
handler ``(args) -> int``. Errors become one line on stderr and a distinct exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import LocalInferError
from ..redact import RedactingFilter

# Command groups, in the order `--help` lists them. Adding a group is one line here.
COMMAND_MODULES = [
    "chat",
    "status",
    "hosts",
    "audit",
    "serve",
    "tokens",
    "remote",
    "consent",
    "privacy",
    "assets",
    "rag",
    "sandbox",
    "web",
    "mcp",
    "doctor",
    "engine",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localinfer",
        description="Local-first AI inference: local servers, then an embedded engine, "
        "remote only by consent.",
    )
    parser.add_argument("--version", action="version", version=f"localinfer {__version__}")
    parser.add_argument("--offline", action="store_true",
                        help="refuse every non-loopback connection")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


class _StderrNotices(logging.Handler):
    """Writes to whatever sys.stderr is at the moment (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"localinfer: {record.getMessage()}", file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def _show_library_notices() -> None:
    # The library announces things the user should see (a first-load download) through
    # the `localinfer` logger; the CLI prints them as plain stderr lines.
    logger = logging.getLogger("localinfer")
    if not any(isinstance(h, _StderrNotices) for h in logger.handlers):
        handler = _StderrNotices()
        handler.addFilter(RedactingFilter())  # every localinfer.* line, not just the root's
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    _show_library_notices()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LocalInferError as exc:
        print(f"localinfer: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("localinfer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
