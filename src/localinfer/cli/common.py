"""What every command needs: settings from flags, a client, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..client import Client, is_model_file
from ..files import safe_resolve
from ..settings import Settings


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    if getattr(args, "offline", False):
        overrides["offline"] = True
    model: str | None = getattr(args, "model", None)
    if model is not None and is_model_file(model):
        # `-m FILE.gguf`: that file becomes the embedded engine's model.
        overrides.update(embedded=True, embedded_model=safe_resolve(Path(model)))
    return Settings(**overrides)


def open_client(args: argparse.Namespace, **overrides: Any) -> Client:
    return Client(settings_from_args(args, **overrides))


def model_arg(args: argparse.Namespace) -> str | None:
    model: str | None = getattr(args, "model", None)
    if is_model_file(model):
        return safe_resolve(Path(str(model))).name
    return model


def add_json_flag(parser: argparse.ArgumentParser,
                  help: str = "machine-readable output") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_verb(verbs: Any, name: str, func: Callable[[argparse.Namespace], int], help: str,
             *, description: str | None = None,
             json_flag: bool = False) -> argparse.ArgumentParser:
    """One `localinfer NOUN VERB` subcommand bound to its handler; the caller adds the
    verb's own arguments to the parser returned."""
    parser: argparse.ArgumentParser = verbs.add_parser(name, help=help,
                                                       description=description)
    parser.set_defaults(func=func)
    if json_flag:
        add_json_flag(parser)
    return parser


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def note(message: str) -> None:
    """One short status line on stderr, kept out of stdout so pipes stay clean."""
    print(message, file=sys.stderr, flush=True)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns; the first row is the header."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but yes (or end of input) is no.
    The question goes to stderr so stdout (e.g. --json) stays clean."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}
