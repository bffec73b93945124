"""Docs that cannot go stale: every command and every setting appears in the docs (the
README and docs/*.md), the README stays short, and its Quick start holds exactly the two
commands CI and users run."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from localinfer.cli.main import build_parser
from localinfer.settings import Settings

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))


def _commands(parser: argparse.ArgumentParser, prefix: str = "localinfer") -> list[str]:
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_is_documented() -> None:
    commands = _commands(build_parser())
    assert len(commands) > 10
    missing = []
    for command in commands:
        *group, last = command.split(" ")
        # Sub-commands may be written as `localinfer cache list|rm|verify`.
        pattern = re.escape(" ".join(group)) + r"[ \w|\\]*\b" + re.escape(last) + r"\b"
        if not re.search(pattern, DOCS):
            missing.append(command)
    assert missing == []


def test_every_setting_is_documented() -> None:
    missing = [name for name in Settings.model_fields
               if f"LOCALINFER_{name.upper()}" not in DOCS]
    assert missing == []


def test_readme_is_short_and_links_resolve() -> None:
    assert len(README.splitlines()) <= 160  # a newcomer's page; the rest lives in docs/
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(((?!https?:)[^)#\s]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].startswith("./dev chat ")
    assert commands[1] == "./dev test"
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "./dev test" in ci


def test_public_names_resolve() -> None:
    import localinfer

    assert sorted(n for n in localinfer.__all__ if n != "__version__") == sorted(
        localinfer._EXPORTS)
    for name in localinfer.__all__:
        assert getattr(localinfer, name) is not None
