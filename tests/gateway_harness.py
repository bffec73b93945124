"""Build a gateway over fake backends and serve it on 127.0.0.1 for the gateway tests.

The router is the real one; only the backends behind it are ``FakeBackend`` s (scripted
answers, failures, delays), placed in the embedded tier so discovery stays out of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from localinfer.backends.base import Backend
from localinfer.client import AsyncClient
from localinfer.gateway import create_app
from localinfer.settings import Settings
from localinfer.types import ModelInfo
from tests.fake_backend import FakeBackend, Script
from tests.support.servers import RunApp as RunApp  # re-exported for the gateway tests


def gateway_settings(home: Path, **overrides: Any) -> Settings:
    return Settings(home=home, scan_default_ports=False, **overrides)


def client_over(settings: Settings, backends: list[Backend]) -> AsyncClient:
    def factory(backend: Backend) -> Callable[[], Any]:
        async def make() -> Backend:
            return backend
        return make

    return AsyncClient(settings, embedded=[factory(b) for b in backends])


def gateway_app(home: Path, backends: list[Backend], **overrides: Any) -> ASGIApp:
    settings = gateway_settings(home, **overrides)
    return create_app(settings, client_over(settings, backends))


def default_backends() -> list[Backend]:
    chat = FakeBackend("fake-chat", tier="embedded", model_ids=("fake-model",))
    embed = FakeBackend("fake-embed", tier="embedded", models=[
        ModelInfo(id="fake-embedder", backend="fake-embed", tier="embedded",
                  capabilities=["embeddings"])])
    return [chat, embed]


def serve_gateway(run_app: RunApp, home: Path, backends: list[Backend] | None = None,
                  **overrides: Any) -> str:
    """Start a gateway on a free loopback port; returns its base URL."""
    return run_app(gateway_app(home, backends if backends is not None else default_backends(),
                               **overrides))


def main() -> None:
    """``python -m tests.gateway_harness [--chunks N]``: a gateway over one instant
    FakeBackend in its own process (for the load test), printing its URL."""
    import argparse
    import tempfile
    import time

    from tests.fakes.serve import AppServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()

    class Endless(FakeBackend):
        async def stream_chat(self, request: Any, model: str) -> Any:
            self.scripts = [Script(chunks=[f"t{i} " for i in range(args.chunks)])]
            async for chunk in super().stream_chat(request, model):
                yield chunk

    with tempfile.TemporaryDirectory() as home:
        app = gateway_app(Path(home), [Endless("fast", tier="embedded")])
        with AppServer(app) as server:
            print(server.base_url, flush=True)
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
