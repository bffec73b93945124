"""Fixtures shared by the test suite: serve an ASGI app on loopback, and start the real
llama.cpp servers on the bundled GGUF.

Nothing here talks to anything but 127.0.0.1. Tests that sweep for servers set
``scan_default_ports=False`` so a developer's own Ollama never changes their outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from tests.fakes.serve import AppServer, ServerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120.0
# Two cores are shared by everything running here; the servers only need to answer.
SERVER_THREADS = os.environ.get("LOCALINFER_TEST_THREADS", "2")

RunApp = Callable[..., str]


LAYERS = ("integration", "browser", "slow", "hostile")
# Fixtures that bring up a real engine or server: a test using one is integration.
ENGINE_FIXTURES = frozenset({"embedder", "fp32_embedder", "index", "llama_server",
                             "llama_cpp_python_server", "llama_server_bin", "bundled_gguf"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Layers: a test that uses a real engine or server fixture is ``integration``; a
    test in none of the heavier layers is ``unit`` — in-process, no engine, no browser,
    no CLI subprocess: the fast loop (`./dev test -m unit`)."""
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if not any(item.get_closest_marker(layer) for layer in LAYERS):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LOCALINFER_HOME and none of the developer's LOCALINFER_*
    settings (as simonw/llm's ``env_setup`` does), so a real config.toml, a running
    Ollama named in LOCALINFER_SERVERS, or an exported token can never change an
    outcome. LOCALINFER_TEST_* knobs (thread counts for the suite) are kept."""
    for name in list(os.environ):
        if name.startswith("LOCALINFER_") and not name.startswith("LOCALINFER_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LOCALINFER_HOME", str(home))
    return home


@pytest.fixture
def run_app() -> Iterator[RunApp]:
    """``run_app(asgi_app, port=0) -> base_url``: serve the app with uvicorn on
    127.0.0.1 in a background thread until the test ends."""
    servers: list[AppServer] = []

    def start(app: ASGIApp, port: int = 0) -> str:
        server = AppServer(app, port).start()
        servers.append(server)
        return server.base_url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from localinfer.assets.bundled import bundled_model_path

    return bundled_model_path()


def _serve(cmd: list[str], ready_path: str, port: int, log: Path) -> Iterator[str]:
    base_url = f"http://127.0.0.1:{port}"
    server = ServerProcess(cmd, base_url + ready_path, log=log, timeout=STARTUP_TIMEOUT)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield base_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """llama.cpp's own llama-server, built once from the sources vendored in the
    llama-cpp-python sdist and cached (scripts/build-llama-cpp.sh)."""
    result = subprocess.run(["bash", str(REPO / "scripts" / "build-llama-cpp.sh")],
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHON": sys.executable})
    if result.returncode != 0:
        pytest.fail("building llama-server failed:\n" + result.stderr[-3000:])
    return Path(result.stdout.strip().splitlines()[-1]) / "llama-server"


@pytest.fixture(scope="session")
def llama_server(llama_server_bin: Path, bundled_gguf: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real llama-server serving the bundled GGUF on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [str(llama_server_bin), "-m", str(bundled_gguf), "--host", "127.0.0.1",
           "--port", str(port), "-c", "2048", "-t", SERVER_THREADS, "--no-webui"]
    yield from _serve(cmd, "/health", port, log)


@pytest.fixture(scope="session")
def llama_cpp_python_server(bundled_gguf: Path,
                            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` (llama-cpp-python[server]) on the bundled GGUF."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp-python") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
           "--n_threads", SERVER_THREADS]
    yield from _serve(cmd, "/v1/models", port, log)
