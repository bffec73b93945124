"""The compatibility matrix's cells as the compat tests declare them: every
``pytest.mark.compat(client, operation, backend)`` on a test in tests/compat."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

COMPAT = Path(__file__).resolve().parents[1] / "compat"


def declared() -> set[tuple[str, str, str]]:
    cells: set[tuple[str, str, str]] = set()
    for path in sorted(COMPAT.glob("test_*.py")):
        try:
            module = importlib.import_module(f"tests.compat.{path.stem}")
        except pytest.skip.Exception as exc:
            pytest.skip(f"{path.name} cannot be imported here: {exc}")
        for value in vars(module).values():
            for mark in getattr(value, "pytestmark", []) if callable(value) else []:
                if mark.name == "compat":
                    cells.add(tuple(mark.args))  # type: ignore[arg-type]
    return cells
