"""Consent through the gateway: it never asks (no terminal to ask on); a remote provider
answers only with a persisted grant, and sensitive requests never go remote.

The "remote" provider is a protocol fake on loopback, so nothing leaves the machine.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from localinfer.consent import ConsentStore
from localinfer.remote import ProviderStore, RemoteProvider
from tests.fakes import FakeModel, FakeServer
from tests.gateway_harness import RunApp, serve_gateway

CHAT = {"messages": [{"role": "user", "content": "hello cloud"}]}


@pytest.fixture
def cloud(run_app: RunApp) -> tuple[FakeServer, str]:
    fake = FakeServer(models=[FakeModel("cloud-model")], reply_prefix="cloud: ")
    return fake, run_app(fake.app) + "/v1"


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path, cloud: tuple[FakeServer, str],
            monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CLOUD_KEY", "sk-test")
    ProviderStore(tmp_path).add(RemoteProvider.checked("cloud", cloud[1], "CLOUD_KEY",
                                                       ["cloud-model"]))
    return serve_gateway(run_app, tmp_path, [])  # no local or embedded tier


def test_remote_without_grant_is_refused_without_asking(gateway: str,
                                                        cloud: tuple[FakeServer, str]) -> None:
    response = httpx.post(gateway + "/v1/chat/completions", timeout=10,
                          json={**CHAT, "model": "cloud-model"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "consent_required"
    assert "localinfer consent grant cloud" in error["message"]
    assert [r for r in cloud[0].requests if r.path.endswith("/chat/completions")] == []


def test_remote_with_persisted_grant_answers_and_says_so(gateway: str, tmp_path: Path,
                                                          cloud: tuple[FakeServer, str]) -> None:
    ConsentStore(tmp_path).grant("cloud", cloud[1])
    response = httpx.post(gateway + "/v1/chat/completions", timeout=10, json=CHAT)
    assert response.status_code == 200
    assert response.headers["x-localinfer-tier"] == "remote"
    assert response.headers["x-localinfer-backend"] == "cloud"
    assert response.json()["choices"][0]["message"]["content"] == "cloud: hello cloud"


def test_sensitive_header_never_goes_remote(gateway: str, tmp_path: Path,
                                            cloud: tuple[FakeServer, str]) -> None:
    ConsentStore(tmp_path).grant("cloud", cloud[1])
    response = httpx.post(gateway + "/v1/chat/completions", timeout=10, json=CHAT,
                          headers={"x-localinfer-sensitive": "true"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "sensitive_local_only"
    assert [r for r in cloud[0].requests if r.path.endswith("/chat/completions")] == []
