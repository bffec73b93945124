"""Client libraries imported by the first test that uses them, not at collection:
litellm, llm and langchain take seconds to import, which every run (and every xdist
worker) paid before selecting a single test."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest


class LazyModule:
    """Stands for module ``name``: the first attribute read imports it, and a module that
    is not installed skips that test (``pytest.importorskip``)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            # Not the module's API but a probe: pytest's collection asks every module-level
            # object for _mock_name and dunders, copy and inspect ask for dunders.
            raise AttributeError(attr)
        if self._module is None:
            self._module = pytest.importorskip(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
