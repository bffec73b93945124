"""Schemathesis over the gateway's own /openapi.json, against the running gateway:
generated (and deliberately malformed) requests never get a 5xx, and every answer
matches the documented statuses, content types and schemas (``--checks all``).

Runs schemathesis's CLI rather than its pytest plugin, which does not load under
pytest 9. Bounded: a fixed seed, a per-operation example cap and a time budget.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway_harness import RunApp, serve_gateway

BUDGET_SECONDS = 60


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_or_schema_violations(
        run_app: RunApp, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    url = serve_gateway(run_app, tmp_path / "home", max_body_bytes=64 * 1024)
    # One worker: hypothesis' lambda-source introspection is not thread-safe on 3.11.
    result = subprocess.run(
        [st, "run", url + "/openapi.json", "--checks", "all", "--seed", "1", "-w", "1",
         "-n", "25", "--max-time", str(BUDGET_SECONDS), "--generation-database", "none",
         # ST302 ("created resource not found") follows POST /v1/responses with
         # GET /v1/responses/{id}: a response made with store: false is not kept, so that
         # 404 is OpenAI's documented behaviour, not a bug (the API's only such link).
         "--exclude-checks", "ensure_resource_availability", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=BUDGET_SECONDS + 120)
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    # Exit 0 is schemathesis' verdict; its summary then says "No issues found", or, when a
    # slow run hit a warning (e.g. too few valid model ids for one route), every
    # generated case passed — never a failure.
    cases = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert "No issues found" in result.stdout or (
        cases is not None and cases[1] == cases[2] and "failed" not in summary), summary
