"""Import cycles that issue 25 removed stay removed: the import graph of src/localinfer,
built from the source (every ``import`` and ``from … import`` of a localinfer module, at
module level, inside functions or under ``TYPE_CHECKING``), has no path back between
the modules of each pair. And no test imports a conftest or another test module: helpers
live in tests/support."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
PACKAGE = "localinfer"

# Pairs that once imported each other (a function-level import dodging the cycle).
BROKEN_CYCLES = [
    ("localinfer.client", "localinfer.tools.loop"),
    ("localinfer.backends.onnx.embedder", "localinfer.backends.onnx.quantize"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imported(node: ast.AST, name: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The localinfer modules one import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
        return
    if not isinstance(node, ast.ImportFrom):
        return
    if node.level:
        package = name.split(".") if is_package else name.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base in known:
        yield base
    for alias in node.names:  # `from . import x`, `from .pkg import mod`
        if f"{base}.{alias.name}" in known:
            yield f"{base}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[name] = {target for node in ast.walk(tree)
                       for target in _imported(node, name, is_package, known)
                       if target != name}
    return graph


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A path of imports from ``start`` to ``goal``, or None."""
    seen = {start}
    paths = [[start]]
    while paths:
        path = paths.pop()
        for target in sorted(graph.get(path[-1], ())):
            if target == goal:
                return [*path, target]
            if target not in seen:
                seen.add(target)
                paths.append([*path, target])
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Parsed once for the module's tests (every source file: about a second)."""
    return import_graph()


def test_the_graph_sees_function_level_and_relative_imports(graph: dict[str, set[str]]) -> None:
    assert "localinfer.messages" in graph["localinfer.tools.loop"]
    assert "localinfer.tools.loop" in graph["localinfer.client"]
    assert "localinfer.backends.onnx.quantize" in graph["localinfer.backends.onnx.embedder"]
    # embedded_factories imports the embedded backend inside a function
    assert "localinfer.backends.embedded" in graph["localinfer.client"]


@pytest.mark.parametrize(("first", "second"), BROKEN_CYCLES)
def test_no_cycle_between(graph: dict[str, set[str]], first: str, second: str) -> None:
    there, back = reaches(graph, first, second), reaches(graph, second, first)
    assert there is None or back is None, (
        f"import cycle: {' -> '.join(there or [])} and {' -> '.join(back or [])}")


def test_no_test_imports_a_conftest() -> None:
    """conftest.py is pytest's to load; what tests share is imported from tests/support."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "conftest" not in text:
            continue  # parsed only where the word appears at all
        tree = ast.parse(text, filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            if any("conftest" in name.split(".") for name in names):
                offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert offenders == []


def _is_test_module(name: str) -> bool:
    """``tests.test_x`` or ``tests.<dir>.test_x``: a module pytest collects tests from."""
    parts = name.split(".")
    return parts[0] == "tests" and len(parts) > 1 and parts[-1].startswith("test_")


def _imported_names(node: ast.AST, path: Path) -> list[str]:
    """The dotted names one import statement in ``path`` (under tests/) may load: the
    module and, for ``from M import x``, ``M.x``; relative imports resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = list(path.relative_to(TESTS.parent).parent.parts)
        base = ".".join(package[: len(package) - (node.level - 1)] + ([base] if base else []))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def test_the_check_sees_test_modules_however_imported() -> None:
    here = TESTS / "compat" / "test_x.py"
    found = [name for source in ("import tests.test_a", "from tests import test_a",
                                 "from tests.browser.test_b import f", "from . import test_c",
                                 "from .test_d import f", "from ..hostile import test_e")
             for node in ast.parse(source).body for name in _imported_names(node, here)
             if _is_test_module(name)]
    assert found == ["tests.test_a", "tests.test_a", "tests.browser.test_b",
                     "tests.compat.test_c", "tests.compat.test_d", "tests.hostile.test_e"]
    assert not [name for source in ("from tests.support import rag", "import localinfer.test")
                for node in ast.parse(source).body for name in _imported_names(node, here)
                if _is_test_module(name)]


def test_no_test_imports_another_test_module() -> None:
    """A test module is pytest's to collect, not a library: what tests share (helpers,
    fakes, fixtures) is imported from tests/support."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, (ast.Import, ast.ImportFrom))
                    and any(_is_test_module(name) for name in _imported_names(node, path))):
                offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert offenders == []
