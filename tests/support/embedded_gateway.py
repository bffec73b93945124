"""The real embedded engine behind the gateway, as fixtures: ``engine`` (the backend, its
engine stopped at the end of the test) and ``url`` (the gateway serving it on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer.backends.embedded import EmbeddedBackend
from tests.gateway_harness import RunApp, client_over, gateway_settings


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(gateway_settings(tmp_path, embedded_threads=2))
    yield backend
    asyncio.run(backend.stop_engine())


@pytest.fixture
def url(run_app: RunApp, tmp_path: Path, engine: EmbeddedBackend) -> str:
    from localinfer.gateway import create_app

    settings = gateway_settings(tmp_path, embedded_threads=2)
    return run_app(create_app(settings, client_over(settings, [engine])))
