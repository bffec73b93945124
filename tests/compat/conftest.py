"""A gateway over the scripted FakeBackends (tests/gateway_harness.py) for the
compatibility tests: real ``openai`` and ``ollama`` clients over loopback."""

from __future__ import annotations

from pathlib import Path

import ollama
import openai
import pytest

from tests.fake_backend import FakeBackend
from tests.gateway_harness import RunApp, default_backends, serve_gateway


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
