"""The main job needs no network: `status` and a chat answered by the embedded tier run
inside a network namespace whose only interface is loopback (`unshare -n`, then
`ip link set lo up`). Offline mode is checked there too, where no byte could leave even
if the guard failed. Skipped where creating a network namespace is not permitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localinfer.consent import ConsentStore
from localinfer.ledger import EgressLedger
from localinfer.remote import ProviderStore, RemoteProvider
from tests.netns import needs_netns, run_in_netns

PUBLIC = "https://api.example.com/v1"


pytestmark = [needs_netns, pytest.mark.integration]  # CLI runs in a network namespace


def in_netns(home: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `localinfer ARGS` in a fresh loopback-only network namespace."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    base.update(LOCALINFER_HOME=str(home), **(env or {}))
    return run_in_netns([sys.executable, "-m", "localinfer.cli.main", *args], base,
                        timeout=timeout)


def test_namespace_has_only_loopback() -> None:
    out = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up && ip -o link && "
                          "echo ROUTES && ip route && ip -6 route"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    links, routes = out.split("ROUTES")
    assert [line.split(":")[1].strip() for line in links.strip().splitlines()] == ["lo"]
    assert "default" not in routes


def test_status_without_network(tmp_path: Path) -> None:
    result = in_netns(tmp_path, "status", "--json", env={"LOCALINFER_EMBEDDED": "off"})
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["servers"] == [] and status["embedded"]["enabled"] is False


@pytest.mark.integration
@pytest.mark.slow
def test_status_and_embedded_chat_without_network(tmp_path: Path) -> None:
    status = in_netns(tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    embedded = json.loads(status.stdout)["embedded"]
    assert embedded["enabled"] and embedded["models"], status.stdout

    chat = in_netns(tmp_path, "chat", "--max-tokens", "16", "--temperature", "0",
                    "Name a colour.")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip(), "the embedded engine should have answered"
    assert "tier embedded" in chat.stderr

    privacy = json.loads(in_netns(tmp_path, "privacy", "--json").stdout)
    assert privacy["destinations"] == [] and privacy["left_machine"] == 0


def test_offline_remote_refused_in_namespace(tmp_path: Path) -> None:
    """A granted provider on a public host, --offline: refused before any connection or
    name lookup (and in this namespace nothing could have left anyway)."""
    ProviderStore(tmp_path).add(RemoteProvider.checked("cloud", PUBLIC, "CLOUD_KEY",
                                                       ["big-model"]))
    ConsentStore(tmp_path).grant("cloud", PUBLIC)
    env = {"LOCALINFER_EMBEDDED": "off", "CLOUD_KEY": "sk-test"}
    for args in (("--offline", "chat", "-m", "big-model", "hi"),
                 ("chat", "-m", "big-model", "hi")):
        full_env = {**env, "LOCALINFER_OFFLINE": "1"} if "--offline" not in args else env
        result = in_netns(tmp_path, *args, env=full_env)
        assert result.returncode == 8, result.stderr
        assert "offline mode" in result.stderr and "api.example.com" in result.stderr
    assert EgressLedger.for_home(tmp_path).records() == []
