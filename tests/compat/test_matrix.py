"""docs/compatibility.md is generated (scripts/compat_matrix.py, `./dev compat`) and
current: every matrix cell the compat tests declare is in the committed table and none
that they do not, the table is byte for byte what the generator hashed (not hand-edited),
and no cell is ✗ except a known failure the tests mark xfail (shown as ``✗ xfail: …``, for
the lead to fix; an xfail that starts passing fails its own test, strict)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from tests.support.compat_matrix import declared

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "compatibility.md"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compat_matrix",
                                                  REPO / "scripts" / "compat_matrix.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_matrix_is_generated_and_current() -> None:
    body, filled, digest = generator().parse(DOC.read_text(encoding="utf-8"))
    assert digest == hashlib.sha256(body.encode()).hexdigest(), (
        "docs/compatibility.md was edited by hand or is incomplete: run ./dev compat")
    wanted = declared()
    assert filled == wanted, ("declared but not in the table: "
                              f"{sorted(wanted - filled)}; in the table but not declared: "
                              f"{sorted(filled - wanted)}; run ./dev compat")
    unexpected = [line for line in body.splitlines() if "✗" in line
                  and line.count("✗") != line.count("✗ xfail: ")]
    assert not unexpected, unexpected


def test_generator_renders_each_outcome() -> None:
    gen = generator()
    base = {"client": "openai", "backend": "scripted", "refused": None, "reason": ""}
    text = gen.render([
        {**base, "operation": "chat", "outcome": "passed"},
        {**base, "operation": "n>1", "outcome": "passed", "refused": "400 naming n"},
        {**base, "operation": "tools", "outcome": "failed", "reason": "AssertionError: x"},
        {**base, "operation": "tools", "outcome": "passed", "backend": "embedded"},
        {**base, "operation": "/api/pull", "outcome": "passed", "na": "the asset cache"},
        {**base, "operation": "/api/pull", "outcome": "failed", "backend": "embedded",
         "reason": "xfail: a known bug"},
    ])
    body, filled, digest = gen.parse(text)
    assert "| openai | chat | ✓ | – | – |" in body
    assert "| openai | n>1 | refused: 400 naming n | – | – |" in body
    assert "| openai | tools | ✗ AssertionError: x | ✓ | – |" in body
    assert "| openai | /api/pull | n/a: the asset cache | ✗ xfail: a known bug | – |" in body
    assert digest == hashlib.sha256(body.encode()).hexdigest()
    assert ("openai", "tools", "embedded") in filled and len(filled) == 6
