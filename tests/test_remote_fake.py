"""The fake hosted provider's own tests (the fake is tests/support/remote_provider.py)."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from tests.support.remote_provider import KEY, MODEL, FakeRemoteProvider, remote_provider

__all__ = ["remote_provider"]  # the fixture, used by name


def test_fake_counts_raw_connections(remote_provider: tuple[FakeRemoteProvider, str]) -> None:
    fake, base = remote_provider
    url = httpx.URL(base)
    with socket.create_connection((url.host, url.port or 80), timeout=5):
        pass
    # A bare connect with no request is still a connection the provider saw.
    with httpx.Client(trust_env=False) as client:
        client.get(base + "/models", headers={"authorization": f"Bearer {KEY}"})
    assert fake.connections == 2
    assert fake.paths == ["/v1/models"]


def test_fake_requires_the_key(remote_provider: tuple[FakeRemoteProvider, str]) -> None:
    fake, base = remote_provider
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(trust_env=False) as client:
        denied = client.post(base + "/chat/completions", json=body)
        ok = client.post(base + "/chat/completions", json=body,
                         headers={"authorization": f"Bearer {KEY}"})
    assert denied.status_code == 401 and fake.refused_keys == 1
    assert ok.json()["choices"][0]["message"]["content"] == "remote: hi"
    assert fake.bodies_out[-1] == len(ok.content)
    assert fake.bodies_in[-1] == len(ok.request.content)
