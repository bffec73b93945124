"""Offline mode refuses every non-loopback destination before a connection is opened,
whatever made the request: discovery, a backend, the remote tier, a download.

No test here sends traffic anywhere: ``RecordingTransport`` stands where the network
would be, records what reached it and answers from a script.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import pytest

from localinfer.client import AsyncClient
from localinfer.consent import ConsentStore
from localinfer.discovery import Discovery
from localinfer.errors import EgressBlocked
from localinfer.http import EgressPolicy, Purpose, make_client
from localinfer.ledger import EgressLedger
from localinfer.remote import ConsentedRemoteTier, ConsentQuestion, ProviderStore, RemoteProvider
from localinfer.settings import Settings
from localinfer.types import Tier
from tests.support.transport import HttpxTransport

BLOCKED = [
    "http://192.168.1.20:11434/api/tags",   # private LAN
    "http://10.0.0.5/v1/models",
    "http://gpu-box.lan:8080/v1/models",    # LAN name: never resolved
    "https://api.openai.com/v1/models",     # public name: never resolved
    "http://93.184.216.34/",                # public address
    "http://[2001:db8::1]:8080/v1/models",  # public IPv6
]
ALLOWED = [
    "http://127.0.0.1:11434/api/tags",
    "http://127.9.9.9:8080/health",
    "http://localhost:1234/v1/models",
    "http://[::1]:8000/v1/models",
]


def record_and_allow(asked: list[Any], question: Any) -> bool:
    """An on_consent callback that notes the question and says yes."""
    asked.append(question)
    return True


class _Recording(httpx.AsyncBaseTransport):
    """Records each request instead of connecting; answers 200, or a scripted redirect."""

    def __init__(self, redirects: dict[str, str] | None = None) -> None:
        self.seen: list[httpx.URL] = []
        self.redirects = redirects or {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url)
        target = self.redirects.get(str(request.url))
        if target:
            return httpx.Response(302, headers={"location": target})
        return httpx.Response(200, json={"data": []}, headers={"content-length": "12"})


class RecordingTransport(HttpxTransport):
    """The recording transport under localinfer's client; ``seen``: the URLs asked."""

    def __init__(self, redirects: dict[str, str] | None = None) -> None:
        self.recording = _Recording(redirects)
        super().__init__(self.recording)

    @property
    def seen(self) -> list[httpx.URL]:
        return self.recording.seen


@pytest.mark.parametrize("purpose", ["discovery", "backend", "download"])
@pytest.mark.parametrize("tier", ["local", "remote"])
@pytest.mark.parametrize("url", BLOCKED)
async def test_offline_refuses_before_connecting(url: str, tier: Tier, purpose: Purpose) -> None:
    transport = RecordingTransport()
    recorded: list[Any] = []
    policy = EgressPolicy(offline=True, recorders=[recorded.append])
    async with make_client(policy, tier=tier, purpose=purpose, transport=transport) as client:
        with pytest.raises(EgressBlocked, match="offline mode") as info:
            await client.get(url)
    assert httpx.URL(url).host in info.value.message
    assert transport.seen == []
    assert recorded == []  # nothing happened, so nothing is recorded


@pytest.mark.parametrize("url", ALLOWED)
async def test_offline_allows_loopback(url: str) -> None:
    transport = RecordingTransport()
    async with make_client(EgressPolicy(offline=True), tier="local",
                           transport=transport) as client:
        assert (await client.get(url)).status_code == 200
    assert transport.seen == [httpx.URL(url)]


async def test_online_lets_the_same_request_through() -> None:
    transport = RecordingTransport()
    async with make_client(EgressPolicy(offline=False), tier="remote",
                           transport=transport) as client:
        await client.get(BLOCKED[3])
    assert transport.seen == [httpx.URL(BLOCKED[3])]


def test_env_and_flag_turn_offline_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from localinfer.cli.common import settings_from_args
    from localinfer.cli.main import build_parser

    monkeypatch.setenv("LOCALINFER_HOME", str(tmp_path))
    monkeypatch.setenv("LOCALINFER_OFFLINE", "1")
    assert Settings().offline is True
    client = AsyncClient(Settings(), embedded=[])
    assert client.policy.offline is True
    monkeypatch.delenv("LOCALINFER_OFFLINE")
    assert Settings().offline is False
    args = build_parser().parse_args(["--offline", "status"])
    assert settings_from_args(args).offline is True


async def test_discovery_offline_probes_only_loopback(tmp_path: Path) -> None:
    transport = RecordingTransport()
    settings = Settings(home=tmp_path, scan_default_ports=False, offline=True,
                        servers=["http://192.168.1.20:11434", "https://llm.example.com",
                                 "http://127.0.0.1:11434"])
    ledger = EgressLedger.for_home(tmp_path)
    policy = EgressPolicy(offline=True, recorders=[ledger])
    await Discovery(settings, policy, transport=transport).servers(refresh=True)
    assert transport.seen, "the loopback server should have been probed"
    assert {u.host for u in transport.seen} == {"127.0.0.1"}
    report = ledger.report()
    assert report.requests == len(transport.seen) and report.destinations == []
    ledger.close()


async def test_remote_tier_offline_refuses_before_asking(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, offline=True, embedded=False)
    ProviderStore(tmp_path).add(RemoteProvider.checked(
        "cloud", "https://api.example.com/v1", "CLOUD_KEY", ["big-model"]))
    ConsentStore(tmp_path).grant("cloud", "https://api.example.com/v1")
    asked: list[ConsentQuestion] = []
    transport = RecordingTransport()
    async with AsyncClient(settings, embedded=[]) as client:
        client.router.remote = ConsentedRemoteTier(
            settings, client.policy, transport=transport,
            on_consent=functools.partial(record_and_allow, asked))
        with pytest.raises(EgressBlocked, match=r"api\.example\.com"):
            await client.chat("hi", model="big-model")
    assert transport.seen == [] and asked == []


async def test_download_offline_and_redirect_off_the_machine() -> None:
    from localinfer.assets.download import probe_size

    transport = RecordingTransport()
    policy = EgressPolicy(offline=True)
    with pytest.raises(EgressBlocked):
        await probe_size("https://huggingface.co/x/resolve/main/m.gguf", policy,
                         transport=transport)
    assert transport.seen == []
    # A loopback mirror that redirects off the machine: the second hop is refused.
    mirror = "http://127.0.0.1:9/m.gguf"
    transport = RecordingTransport(redirects={mirror: "https://cdn.example.com/m.gguf"})
    with pytest.raises(EgressBlocked, match=r"cdn\.example\.com"):
        await probe_size(mirror, policy, transport=transport)
    assert transport.seen == [httpx.URL(mirror)]
