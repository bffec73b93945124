"""Fixtures shared by the test suite: serve an ASGI app on loopback, and start
llama.cpp's real server on the bundled GGUF.

Nothing here talks to anything but 127.0.0.1. Tests that sweep for servers set
``scan_default_ports=False`` so a developer's own Ollama never changes their outcome.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp

from tests.fakes.serve import AppServer, free_port
from tests.support.servers import REPO, SERVER_THREADS, RunApp, serve
from tests.support.tls import share_default_context

# ONNX Runtime's telemetry off in this process too (tests and benches import onnxruntime
# directly, not only through localinfer's backends/onnx/runtime.py); the egress tests
# remove it for the processes they check.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# httpx builds a TLS context per client (~30 ms); the suite's hundreds of clients share one.
share_default_context()

LAYERS = ("integration", "browser", "slow", "hostile")
# Fixtures that bring up a real engine or server: a test using one is integration.
ENGINE_FIXTURES = frozenset({"embedder", "fp32_embedder", "index", "llama_server",
                             "llama_server_bin", "bundled_gguf"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Layers: a test that uses a real engine or server fixture is ``integration``; a
    test in none of the heavier layers is ``unit`` — in-process, no engine, no browser,
    no CLI subprocess: the fast loop (`./dev test -m unit`)."""
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if not any(item.get_closest_marker(layer) for layer in LAYERS):
            item.add_marker(pytest.mark.unit)


# With xdist's --dist loadfile (./dev test -m unit) each file runs in one worker, and the
# files that import the same slow client library (litellm alone takes 3 s) share one,
# so only one worker pays for the import.
SHARED_WORKER = dict.fromkeys(["tests/compat/test_clients.py", "tests/compat/test_matrix_cells.py",
                               "tests/compat/test_langchain_openai.py"], "client-libraries")


class _SharedImportsScheduling:
    """xdist's scheduler hook: loadfile, with SHARED_WORKER's files as one unit."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadFileScheduling

        class SharedImports(LoadFileScheduling):  # type: ignore[misc]  # xdist is untyped
            def _split_scope(self, nodeid: str) -> str:
                where = str(super()._split_scope(nodeid))
                return SHARED_WORKER.get(where, where)

        return SharedImports(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_SharedImportsScheduling(), "localinfer-xdist-groups")


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


@pytest.fixture(autouse=True)
def no_engine_left(isolated_environment: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """An embedded engine a test started in its home (or in a home under its tmp_path)
    is stopped when the test ends: engines are shared children that outlive their
    caller. Engines of module-scoped fixtures are stopped by no_engine_after_session."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    from localinfer.backends.embedded.supervisor import engine_processes, stop_engines_under

    # One look at the running engines (a /proc sweep, ~3 ms) for both roots; most tests
    # started none.
    homes = [home.resolve() for home in engine_processes().values()]
    for root in (isolated_environment, tmp):
        if root is not None and any(home == root.resolve() or root.resolve() in home.parents
                                    for home in homes):
            stop_engines_under(root)


@pytest.fixture(autouse=True, scope="session")
def no_engine_after_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    from localinfer.backends.embedded.supervisor import stop_engines_under

    stop_engines_under(tmp_path_factory.getbasetemp())


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


@pytest.fixture(scope="session")
def llama_server_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``llama-server`` command: llama.cpp's own C++ server from the xllamacpp wheel
    (tests/support/llama_server.py takes llama-server's flags), so CI compiles nothing."""
    where = tmp_path_factory.mktemp("bin") / "llama-server"
    where.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec "
                     f"{shlex.quote(sys.executable)} -m tests.support.llama_server \"$@\"\n")
    where.chmod(0o755)
    return where


@pytest.fixture(scope="session")
def llama_server(llama_server_bin: Path, bundled_gguf: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's server serving the bundled GGUF on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [str(llama_server_bin), "-m", str(bundled_gguf), "--host", "127.0.0.1",
           "--port", str(port), "-c", "2048", "-t", SERVER_THREADS, "--no-webui"]
    yield from serve(cmd, "/health", port, log)
