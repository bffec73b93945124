"""Hosts: declared trust, the [[hosts]] config, health with cooldown, the order hosts are
tried in, sensitive requests kept on the device, and the host named on every answer.
Servers are protocol fakes on 127.0.0.1 (lan hosts are declared lan in config: no test
sends anything off loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localinfer import AsyncClient, Settings
from localinfer.cli.main import main
from localinfer.errors import BackendError, NoBackend, SensitiveDataBlocked
from localinfer.hosts.configfile import read_hosts, write_hosts
from localinfer.hosts.health import COOLDOWN_MAX, Health
from localinfer.hosts.spec import HostSpecError, declared_hosts, make_spec
from localinfer.settings import SettingsError
from localinfer.types import ChatResponse
from tests.fakes.base import FakeModel
from tests.fakes.litellm_proxy import LiteLLMProxyFake
from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.support.clock import ManualClock
from tests.support.gate import Gate
from tests.support.servers import RunApp


def chats(fake: Any) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/chat/completions")


def host(url: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "name": name, **extra}


def settings(home: Path, hosts: list[dict[str, Any]], **extra: Any) -> Settings:
    # Generous probes: on a loaded machine a 0.5 s probe can miss a fake that is up.
    return Settings(home=home, scan_default_ports=False, embedded=False, hosts=hosts,
                    discovery_timeout=5.0, **extra)


def fake(name: str) -> OpenAICompatibleFake:
    return OpenAICompatibleFake(models=[FakeModel("shared-chat")], reply_prefix=f"{name}: ")


# -- declared trust ----------------------------------------------------------------------

def test_servers_are_lan_unless_loopback() -> None:
    specs = declared_hosts([], ["http://127.0.0.1:8080", "localhost:11434/v1",
                                "http://192.168.1.20:11434", "http://[::1]:1234"])
    assert [(s.trust, s.takes_sensitive) for s in specs] == [
        ("device", True), ("device", True), ("lan", False), ("device", True)]


def test_bad_hosts_are_one_clear_error() -> None:
    with pytest.raises(HostSpecError, match="not a loopback address"):
        make_spec({"url": "http://192.168.1.20:11434", "trust": "device"})
    with pytest.raises(HostSpecError, match="unknown key"):
        make_spec({"url": "http://127.0.0.1:1", "token": "secret"})
    with pytest.raises(HostSpecError, match="environment variable"):
        make_spec({"url": "http://127.0.0.1:1", "token_env": "sk-123 oops"})
    with pytest.raises(SettingsError, match=r"\[\[hosts\]\] entry 2: name or URL repeats"):
        Settings(hosts=[host("http://127.0.0.1:1", "a"), host("http://127.0.0.1:2", "a")])


# -- config.toml -------------------------------------------------------------------------

def test_hosts_cli_add_list_rm_keeps_the_rest_of_config(
        isolated_environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = isolated_environment / "config.toml"
    config.write_text('# my settings\ndebug = true\n\n[remotes.x]\nbase_url = "https://a"\n')
    assert main(["hosts", "add", "http://127.0.0.1:8081", "--name", "box", "--prefer"]) == 0
    assert main(["hosts", "add", "http://192.168.1.30:11434", "--name", "gpu",
                 "--token-env", "GPU_TOKEN", "--weight", "2", "--trusted"]) == 0
    assert "may receive sensitive requests" in capsys.readouterr().out
    assert main(["hosts", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["hosts"]
    assert [(h["name"], h["trust"], h["sensitive_ok"], h["prefer"], h["weight"])
            for h in listed] == [("box", "device", True, True, 1.0),
                                 ("gpu", "lan", True, False, 2.0)]
    text = config.read_text()
    assert text.startswith('# my settings\ndebug = true\n') and 'base_url = "https://a"' in text
    assert "GPU_TOKEN" in text and "token =" not in text
    assert main(["hosts", "rm", "box"]) == 0
    assert [h.name for h in read_hosts(config)] == ["gpu"]
    assert main(["hosts", "rm", "nope"]) == 2
    assert "no host named 'nope'" in capsys.readouterr().err
    assert Settings().debug is True


def test_broken_config_is_never_rewritten(isolated_environment: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = isolated_environment / "config.toml"
    config.write_text("debug = tru\n")
    assert main(["hosts", "add", "http://127.0.0.1:8081"]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and err.count("\n") == 1 and "Traceback" not in err
    assert config.read_text() == "debug = tru\n"
    config.write_text('[[hosts]]\nurl = "http://10.1.2.3:80"\ntrust = "device"\n')
    assert main(["hosts", "list"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    config.write_text("debug = tru\n")
    with pytest.raises(SettingsError):
        write_hosts(config, [])
    assert config.read_text() == "debug = tru\n"


# -- health --------------------------------------------------------------------------------

def test_cooldown_doubles_from_one_second_to_sixty() -> None:
    now = [100.0]
    health = Health(clock=lambda: now[0])
    seen = []
    for _ in range(9):
        health.failed("refused")
        seen.append(health.cooldown)
        assert health.state() == "cooling"
        now[0] += health.cooldown
        assert health.state() == "probe"
        assert health.claim_probe() and not health.claim_probe()  # one prober at a time
        health.release_probe()
        health.recovered()
        assert health.state() == "up"
    assert seen == [1, 2, 4, 8, 16, 32, 60, 60, 60] and COOLDOWN_MAX == 60
    health.succeeded(0.01)
    assert health.cooldown == 0 and health.failures == 0


# -- routing over real HTTP fakes --------------------------------------------------------

async def test_preferred_host_first_then_failover_and_cooldown(
        tmp_path: Path, run_app: RunApp) -> None:
    a, b = fake("a"), fake("b")
    url_a, url_b = run_app(a.app), run_app(b.app)
    s = settings(tmp_path, [host(url_a, "a", prefer=True), host(url_b, "b")])
    clock = ManualClock()
    async with AsyncClient(s) as client:
        health = client.router.hosts.health("a")
        health.clock = clock  # the cooldown runs out when the test says, not in 1 s
        reply = await client.chat("one", model="shared-chat")
        assert isinstance(reply, ChatResponse)
        assert (reply.host, reply.backend, reply.text) == ("a", "a", "a: one")
        a.fail = "error"  # a 5xx: marked down, the same request moves to b
        reply = await client.chat("two", model="shared-chat")
        assert isinstance(reply, ChatResponse) and reply.host == "b"
        assert health.state() == "cooling" and health.cooldown == 1
        tried = chats(a)
        clock.advance(0.9)
        reply = await client.chat("three", model="shared-chat")
        assert isinstance(reply, ChatResponse) and reply.host == "b"
        assert chats(a) == tried  # a cooling host gets no request at all
        a.fail = "none"
        clock.advance(0.1)
        assert health.state() == "probe"
        reply = await client.chat("four", model="shared-chat")  # probe, then back to a
        assert isinstance(reply, ChatResponse) and reply.host == "a"
        report = {h["name"]: h for h in (await client.status())["hosts"]}
        assert report["a"]["state"] == "up" and report["b"]["served"] >= 2


async def test_sensitive_requests_stay_on_device_or_trusted_hosts(
        tmp_path: Path, run_app: RunApp) -> None:
    dev, lan, trusted = fake("dev"), fake("lan"), fake("trusted")
    urls = [run_app(f.app) for f in (dev, lan, trusted)]
    # All on 127.0.0.1; "lan" is what the config declares, as a LAN box would be.
    s = settings(tmp_path, [host(urls[0], "dev"),
                            host(urls[1], "lan", trust="lan", prefer=True, weight=5)])
    async with AsyncClient(s) as client:
        for i in range(10):
            reply = await client.chat(f"secret {i}", model="shared-chat", sensitive=True)
            assert isinstance(reply, ChatResponse) and reply.host == "dev"
        plain = await client.chat("not secret", model="shared-chat")
        assert isinstance(plain, ChatResponse) and plain.host == "lan"  # preferred
        assert chats(lan) == 1
        dev.fail = "error"
        with pytest.raises(BackendError):
            await client.chat("secret", model="shared-chat", sensitive=True)
        with pytest.raises(SensitiveDataBlocked,
                           match=r"allowed to serve it are down: dev.*lan hosts \(lan\)"):
            await client.chat("secret", model="shared-chat", sensitive=True)  # dev cooling
        assert chats(lan) == 1  # not one sensitive request reached the lan host
    s = settings(tmp_path, [host(urls[1], "lan", trust="lan"),
                            host(urls[2], "trusted", trust="lan", trusted=True)])
    async with AsyncClient(s) as client:
        reply = await client.chat("secret", model="shared-chat", sensitive=True)
        assert isinstance(reply, ChatResponse) and reply.host == "trusted"
        status = await client.status()
        assert {h["name"]: h["sensitive_ok"] for h in status["hosts"]} == {
            "lan": False, "trusted": True}
    assert chats(trusted) == 1 and chats(lan) == 1
    assert {r.trust for r in client.ledger.records() if r.port == int(urls[1].rsplit(":", 1)[1])
            } == {"lan"}


class HeldFake(OpenAICompatibleFake):
    """Streams that start only once every stream has reached a server: all of them
    are outstanding together, whatever the machine's speed."""

    def __init__(self, gate: Gate) -> None:
        super().__init__(models=[FakeModel("shared-chat")])
        self.gate = gate

    async def pieces(self, text: str) -> AsyncIterator[str]:
        await self.gate.wait()
        for word in ["held", " stream", " of", " words"]:
            yield word


async def test_least_outstanding_splits_concurrent_streams(tmp_path: Path,
                                                           run_app: RunApp) -> None:
    gate = Gate(16)
    one, two = HeldFake(gate), HeldFake(gate)
    s = settings(tmp_path, [host(run_app(one.app), "one"), host(run_app(two.app), "two")])
    async with AsyncClient(s) as client:
        async def stream() -> str | None:
            chunks = await client.chat("go", model="shared-chat", stream=True)
            served = None
            async for chunk in chunks:
                served = chunk.host
            return served

        hosts = await asyncio.gather(*(stream() for _ in range(16)))
    assert gate.is_open
    counts = {name: hosts.count(name) for name in ("one", "two")}
    assert sum(counts.values()) == 16
    assert min(counts.values()) >= 7, counts  # within 60/40 (here: 8/8 or 9/7)


async def test_router_shaped_host_with_token_from_env(
        tmp_path: Path, run_app: RunApp, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = LiteLLMProxyFake()
    url = run_app(proxy.app)
    s = settings(tmp_path, [host(url, "team-proxy", trust="lan", token_env="TEAM_KEY")])
    monkeypatch.setenv("TEAM_KEY", proxy.master_key)
    async with AsyncClient(s) as client:
        replies = [await client.chat(f"q{i}", model="team-chat") for i in range(2)]
        assert [r.text for r in replies if isinstance(r, ChatResponse)] == [
            "proxy: [gpu-a] q0", "proxy: [gpu-b] q1"]
        assert {r.host for r in replies if isinstance(r, ChatResponse)} == {"team-proxy"}
    ledger = (tmp_path / "egress.sqlite3").read_bytes()
    assert proxy.master_key.encode() not in ledger
    assert proxy.master_key not in (tmp_path / "config.toml").read_text() \
        if (tmp_path / "config.toml").exists() else True
    monkeypatch.setenv("TEAM_KEY", "wrong")  # read at request time, not at start
    async with AsyncClient(s) as client:
        # The proxy refuses to list its models: 503 naming it and the token's variable
        # (the model may be there), not "not found".
        with pytest.raises(NoBackend, match=r"team-proxy .*\$TEAM_KEY"):
            await client.chat("q", model="team-chat")
    assert proxy.refused >= 1


async def test_gateway_names_the_host(tmp_path: Path, run_app: RunApp) -> None:
    from localinfer.gateway import create_app

    a = fake("a")
    s = settings(tmp_path, [host(run_app(a.app), "box-a")])
    # The client lives on the gateway's loop (as in tests/gateway_harness.py).
    gateway = run_app(create_app(s, AsyncClient(s)))
    body = {"model": "shared-chat", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=gateway, trust_env=False) as http:
        plain = await http.post("/v1/chat/completions", json=body)
        streamed = await http.post("/v1/chat/completions", json={**body, "stream": True})
        health = await http.get("/health")
    assert plain.status_code == 200 and plain.headers["x-localinfer-host"] == "box-a"
    assert streamed.headers["x-localinfer-host"] == "box-a"
    assert health.headers["x-localinfer-host"] == "none"


def test_a_ledger_from_before_gains_trust_and_client(tmp_path: Path) -> None:
    import sqlite3
    import time

    from localinfer.http import EgressRecord
    from localinfer.ledger import EgressLedger

    path = tmp_path / "egress.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE egress (time REAL NOT NULL, method TEXT NOT NULL, scheme TEXT NOT NULL, "
        "host TEXT NOT NULL, port INTEGER NOT NULL, path TEXT NOT NULL, bytes_sent INTEGER "
        "NOT NULL, bytes_received INTEGER NOT NULL, status INTEGER, network TEXT NOT NULL, "
        "tier TEXT NOT NULL, purpose TEXT NOT NULL, error TEXT);"
        f"INSERT INTO egress VALUES ({time.time() - 60}, 'GET', 'http', '10.0.0.2', 80, '/', "
        "0, 0, 200, 'private', 'local', 'backend', NULL);")
    old.commit()
    old.close()
    ledger = EgressLedger(path)
    ledger(EgressRecord(time=time.time(), method="POST", scheme="http", host="10.0.0.2", port=80,
                        path="/v1/chat/completions", bytes_sent=1, bytes_received=2,
                        status=200, network="private", tier="local", purpose="backend",
                        trust="lan", client="alice"))
    records = ledger.records()
    assert [(r.trust, r.client) for r in records] == [(None, None), ("lan", "alice")]
    hosts = ledger.report().hosts
    assert sorted((h.trust, h.requests, h.clients) for h in hosts) == [
        ("?", 1, []), ("lan", 1, ["alice"])]
    ledger.close()


async def test_gateway_sensitive_header_keeps_requests_off_lan_hosts(
        tmp_path: Path, run_app: RunApp) -> None:
    from localinfer.gateway import create_app

    dev, lan = fake("dev"), fake("lan")
    s = settings(tmp_path, [host(run_app(lan.app), "lan", trust="lan", prefer=True),
                            host(run_app(dev.app), "dev")])
    gateway = run_app(create_app(s, AsyncClient(s)))
    body = {"model": "shared-chat", "messages": [{"role": "user", "content": "my secret"}]}
    async with httpx.AsyncClient(base_url=gateway, trust_env=False, timeout=30) as http:
        for _ in range(3):
            reply = await http.post("/v1/chat/completions", json=body,
                                    headers={"x-localinfer-sensitive": "true"})
            assert reply.status_code == 200 and reply.headers["x-localinfer-host"] == "dev"
        ollama = await http.post("/api/chat", json={**body, "stream": False},
                                 headers={"x-localinfer-sensitive": "true"})
        assert ollama.status_code == 200 and ollama.headers["x-localinfer-host"] == "dev"
        plain = await http.post("/v1/chat/completions", json=body)
        assert plain.headers["x-localinfer-host"] == "lan"
    assert chats(lan) == 1 and chats(dev) == 4
