"""Three real llama-server processes on loopback ports, declared as hosts (one device,
two lan — all on 127.0.0.1, the lan trust is what config says): a killed host loses its
traffic within one request, cools down, comes back when restarted, and the preferred
host takes its traffic back; a stream cut after its first token ends in an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer import AsyncClient, Settings
from localinfer.errors import BackendError, SensitiveDataBlocked
from localinfer.types import ChatResponse
from tests.fakes.serve import ServerProcess, free_port
from tests.support.clock import ManualClock
from tests.support.servers import SERVER_THREADS, STARTUP_TIMEOUT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAMES = ("dev", "lan1", "lan2")


class Hosts:
    def __init__(self, binary: Path, gguf: Path, logs: Path) -> None:
        self.binary, self.gguf, self.logs = binary, gguf, logs
        self.ports = {name: free_port() for name in NAMES}
        self.procs: dict[str, ServerProcess] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str) -> None:
        cmd = [str(self.binary), "-m", str(self.gguf), "--host", "127.0.0.1",
               "--port", str(self.ports[name]), "-c", "512", "-t", SERVER_THREADS,
               "--no-webui"]
        self.procs[name] = ServerProcess(cmd, self.url(name) + "/health",
                                         log=self.logs / f"{name}.log",
                                         timeout=STARTUP_TIMEOUT).start()

    def kill(self, name: str) -> None:
        proc = self.procs[name].process
        assert proc is not None
        proc.kill()
        proc.wait()


@pytest.fixture
def three_hosts(llama_server_bin: Path, bundled_gguf: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    hosts = Hosts(llama_server_bin, bundled_gguf, tmp_path_factory.mktemp("hosts"))
    try:
        for name in NAMES:
            hosts.start(name)
        yield hosts
    finally:
        for proc in hosts.procs.values():
            proc.stop()


def settings(home: Path, hosts: Hosts) -> Settings:
    return Settings(home=home, scan_default_ports=False, embedded=False, discovery_ttl=1.0,
                    discovery_timeout=5.0,
                    hosts=[{"url": hosts.url("dev"), "name": "dev", "prefer": True},
                           {"url": hosts.url("lan1"), "name": "lan1", "trust": "lan"},
                           {"url": hosts.url("lan2"), "name": "lan2", "trust": "lan"}])


async def ask(client: AsyncClient, text: str, **extra: object) -> ChatResponse:
    reply = await client.chat(text, max_tokens=4, temperature=0, **extra)  # type: ignore[call-overload]
    assert isinstance(reply, ChatResponse)
    return reply


async def test_kill_failover_cooldown_restart_and_preferred_back(
        tmp_path: Path, three_hosts: Hosts) -> None:
    async with AsyncClient(settings(tmp_path, three_hosts)) as client:
        first = await ask(client, "Say hi.")
        assert first.host == "dev"  # preferred while healthy
        assert (await ask(client, "Again.", sensitive=True)).host == "dev"
        three_hosts.kill("dev")
        moved = await ask(client, "Still there?")  # the same request fails over
        assert moved.host in ("lan1", "lan2") and moved.text is not None
        health = client.router.hosts.health("dev")
        assert health.failures >= 1 and health.state() != "up"
        with pytest.raises(SensitiveDataBlocked):  # lan hosts never get sensitive data
            await ask(client, "secret", sensitive=True)
        served = {(await ask(client, f"q{i}")).host for i in range(4)}
        assert served <= {"lan1", "lan2"}
        three_hosts.start("dev")  # same port: it comes back after cooldown and probe
        # Its cooldown is over (and the next request sweeps again) when the test says so.
        health.clock = ManualClock(health.down_until)
        client.discovery.invalidate()
        assert (await ask(client, "Back?")).host == "dev"
        assert [(await ask(client, f"p{i}")).host for i in range(3)] == ["dev"] * 3
        assert health.state() == "up"


async def test_stream_cut_after_first_token_ends_with_an_error(
        tmp_path: Path, three_hosts: Hosts) -> None:
    async with AsyncClient(settings(tmp_path, three_hosts)) as client:
        stream = await client.chat("Count from one to two hundred.", stream=True,
                                   max_tokens=400)
        chunks = 0
        with pytest.raises(BackendError) as info:
            async for chunk in stream:
                chunks += 1
                if chunks == 1:
                    assert chunk.host == "dev"
                    three_hosts.kill("dev")
        assert chunks >= 1 and not info.value.before_first_token
