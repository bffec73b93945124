"""The remote, consent and privacy commands as a new user runs them, against the
connection-counting fake provider on loopback; and the interactive chat's consent prompt
on a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from localinfer.http import EgressRecord
from localinfer.ledger import EgressLedger
from tests.support.remote_provider import KEY, KEY_ENV, MODEL, FakeRemoteProvider, remote_provider
from tests.terminal import Terminal

pytestmark = pytest.mark.integration  # runs the real CLI in subprocesses

__all__ = ["remote_provider"]  # the fixture, used by name

Remote = tuple[FakeRemoteProvider, str]
Run = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update(LOCALINFER_HOME=str(home), LOCALINFER_EMBEDDED="off",
               LOCALINFER_SCAN_DEFAULT_PORTS="false", **{KEY_ENV: KEY})
    return env


@pytest.fixture
def run(tmp_path: Path) -> Run:
    def go(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "localinfer.cli.main", *args],
                              env=cli_env(tmp_path), capture_output=True, text=True,
                              input=input if input is not None else "", timeout=120)
    return go


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("localinfer: error: "), result.stderr
    return lines[0]


def test_remote_consent_privacy_journey(run: Run, remote_provider: Remote) -> None:
    fake, base = remote_provider
    added = run("remote", "add", "cloud", base, "--key-env", KEY_ENV, "--model", MODEL)
    assert added.returncode == 0 and "added remote 'cloud'" in added.stdout
    assert "localinfer consent grant cloud" in added.stderr
    [listed] = json.loads(run("remote", "list", "--json").stdout)["remotes"]
    assert (listed["name"], listed["consent"], listed["key_set"]) == ("cloud", "none", True)
    status = json.loads(run("status", "--json").stdout)
    assert [m["id"] for m in status["remote"]] == [MODEL]

    refused = run("chat", "-m", MODEL, "hello")
    assert refused.returncode == 6
    assert "`localinfer consent grant cloud`" in one_error_line(refused)
    assert refused.stdout == ""
    assert fake.connections == 0  # status, models and a refused chat: not one connection

    no_tty = run("consent", "grant", "cloud")
    assert no_tty.returncode == 2 and "--yes" in one_error_line(no_tty)
    granted = run("consent", "grant", "cloud", "--yes", "--for", "1h")
    assert granted.returncode == 0 and "consent granted" in granted.stdout
    [grant] = json.loads(run("consent", "list", "--json").stdout)["grants"]
    assert grant["active"] and grant["expires_at"] - grant["granted_at"] == 3600
    assert fake.connections == 0

    answered = run("chat", "-m", MODEL, "hello")
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == "remote: hello"
    assert "tier remote" in answered.stderr
    seen = len(fake.requests)

    assert run("chat", "--sensitive", "-m", MODEL, "my diagnosis").returncode != 0
    assert run("chat", "--sensitive", "my diagnosis").returncode == 7
    assert len(fake.requests) == seen

    report = json.loads(run("privacy", "--since", "1h", "--json").stdout)
    [dest] = report["destinations"]
    assert (dest["host"], dest["tier"], dest["requests"]) == ("127.0.0.1", "remote", seen)
    assert (dest["bytes_sent"], dest["bytes_received"]) == (sum(fake.bodies_in),
                                                            sum(fake.bodies_out))
    text = run("privacy").stdout
    assert f"{seen} of " in text and "remote" in text

    assert run("consent", "revoke", "cloud").returncode == 0
    revoked = run("chat", "-m", MODEL, "again")
    assert revoked.returncode == 6 and "no consent grant" in one_error_line(revoked)
    assert len(fake.requests) == seen

    assert run("remote", "rm", "cloud").returncode == 0
    assert json.loads(run("remote", "list", "--json").stdout) == {"remotes": []}
    assert fake.prompts == ["hello"]


def test_privacy_all_local(run: Run, tmp_path: Path) -> None:
    assert "No outbound requests recorded" in run("privacy").stdout
    ledger = EgressLedger.for_home(tmp_path)
    for port in (11434, 8080, 1234):
        ledger(EgressRecord(time=time.time(), method="GET", scheme="http", host="127.0.0.1",
                            port=port, path="/v1/models", bytes_sent=0, bytes_received=10,
                            status=200, network="loopback", tier="local", purpose="discovery"))
    ledger.close()
    assert run("privacy", "--since", "24h").stdout.strip() == (
        "All 3 requests in the last 24h stayed on this machine.")
    body = json.loads(run("privacy", "--json").stdout)
    assert (body["requests"], body["stayed_local"], body["destinations"]) == (3, 3, [])


def test_bad_input_is_one_line(run: Run) -> None:
    for args, code in [(("remote", "add", "x", "not a url", "--key-env", "K"), 2),
                       (("remote", "rm", "nothing"), 2),
                       (("consent", "grant", "nothing", "--yes"), 2),
                       (("privacy", "--since", "yesterday"), 2)]:
        result = run(*args)
        assert result.returncode == code
        one_error_line(result)


def test_interactive_chat_asks_before_going_remote(tmp_path: Path,
                                                   remote_provider: Remote) -> None:
    fake, base = remote_provider
    env = cli_env(tmp_path)
    subprocess.run([sys.executable, "-m", "localinfer.cli.main", "remote", "add", "cloud",
                    base, "--key-env", KEY_ENV, "--model", MODEL], env=env, check=True,
                   capture_output=True)
    with Terminal([sys.executable, "-m", "localinfer.cli.main", "chat", "-m", MODEL], env) as term:
        term.expect("> ")
        term.send("first question")
        asked = term.expect("Allow for this chat session? [y/N]")
        assert "remote provider 'cloud'" in asked and base in asked
        term.send("n")
        term.expect("was declined")
        assert fake.connections == 0
        term.expect("> ")
        term.send("second question")
        term.expect("Allow for this chat session? [y/N]")
        term.send("y")
        term.expect("remote: second question")
        term.expect("> ")
        term.send("third question")  # a yes holds for the session: no second question
        assert "Allow" not in term.expect("remote: third question")
        term.expect("> ")
        term.send("/exit")
        assert term.close() == 0
    assert "first question" not in fake.prompts
    assert fake.prompts[-1] == "third question"
    assert not (tmp_path / "consent.json").exists()  # a session yes is not persisted
