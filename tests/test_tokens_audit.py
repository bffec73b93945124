"""Per-client gateway tokens (hashed, revocable, named in the ledger) and the exposure
audit (listening sockets from /proc/net/tcp{,6}; a server on 0.0.0.0 in a loopback-only
network namespace is exposed, one on 127.0.0.1 is not)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from localinfer import AsyncClient, Settings
from localinfer.audit import EXIT_EXPOSED, Listener, parse_proc_net
from localinfer.cli.main import main
from localinfer.gateway import create_app
from localinfer.tokens import TOKENS_FILE, TokenStore
from tests.fakes.base import FakeModel
from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.netns import needs_netns, run_in_netns
from tests.support.servers import REPO, RunApp

# -- tokens --------------------------------------------------------------------------------


def test_tokens_cli_add_list_rm(isolated_environment: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "add", "alice-laptop"]) == 0
    out = capsys.readouterr()
    secret = out.out.strip()
    assert secret.startswith("li_") and "only time" in out.err
    stored = (isolated_environment / TOKENS_FILE).read_text()
    assert secret not in stored and "alice-laptop" in stored  # hashed, never the secret
    assert TokenStore(isolated_environment).identify(secret) == "alice-laptop"
    assert TokenStore(isolated_environment).identify(secret + "x") is None
    assert main(["tokens", "list", "--json"]) == 0
    assert [t["name"] for t in json.loads(capsys.readouterr().out)["tokens"]] == [
        "alice-laptop"]
    assert main(["tokens", "rm", "alice-laptop"]) == 0
    assert main(["tokens", "rm", "alice-laptop"]) == 2
    assert "no token named" in capsys.readouterr().err
    assert main(["tokens", "add", "bad name!"]) == 2


async def test_gateway_client_tokens_revocation_and_ledger(tmp_path: Path,
                                                           run_app: RunApp) -> None:
    store = TokenStore(tmp_path)
    alice, bob = store.add("alice"), store.add("bob")
    upstream = OpenAICompatibleFake(models=[FakeModel("shared-chat")])
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded=False,
                        discovery_timeout=5.0,
                        hosts=[{"url": run_app(upstream.app), "name": "box"}])
    served = AsyncClient(settings)
    gateway = run_app(create_app(settings, served))
    body = {"model": "shared-chat", "messages": [{"role": "user", "content": "hi"}]}

    def post(secret: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {secret}"} if secret else {}
        return httpx.post(gateway + "/v1/chat/completions", json=body, headers=headers,
                          trust_env=False, timeout=30)

    assert post(None).status_code == 401  # tokens exist: one is required, even on loopback
    assert post("li_wrong").status_code == 401
    ok = post(alice)
    assert ok.status_code == 200 and ok.headers["x-localinfer-host"] == "box"
    store.remove("alice")  # revoked: refused at the next request, no restart
    refused = post(alice)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert post(bob).status_code == 200
    chats = [r for r in served.ledger.records() if r.path == "/v1/chat/completions"]
    assert [r.client for r in chats] == ["alice", "bob"]
    assert [r.trust for r in chats] == ["device", "device"]
    raw = (tmp_path / "egress.sqlite3").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("egress.sqlite3-*"))
    assert alice.encode() not in raw and bob.encode() not in raw
    (tmp_path / TOKENS_FILE).write_text("{not json")  # damaged: fail closed
    damaged = post(bob)
    assert damaged.status_code == 401 and TOKENS_FILE in damaged.json()["error"]["message"]


# -- audit ---------------------------------------------------------------------------------

PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 00000000:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:04D2 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A
"""


def test_proc_net_tcp_is_parsed() -> None:
    assert parse_proc_net(PROC_TCP) == [Listener("127.0.0.1", 8080),
                                        Listener("0.0.0.0", 11434)]
    assert parse_proc_net(PROC_TCP6) == [Listener("::1", 1234), Listener("::", 8000)]
    assert [sock.loopback for sock in parse_proc_net(PROC_TCP + PROC_TCP6[1:])] == [
        True, False, True, False]


AUDIT_SCRIPT = """
import json, socket, sys, threading, uvicorn
from localinfer.cli.main import main
from tests.fakes.ollama import OllamaFake

def serve(host):
    sock = socket.socket(); sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0)); port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(OllamaFake().app, lifespan="off",
                                           log_level="critical"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        pass
    return port

wide, narrow = serve("0.0.0.0"), serve("127.0.0.1")
import os
os.environ["LOCALINFER_SERVERS"] = f"http://127.0.0.1:{wide},http://127.0.0.1:{narrow}"
os.environ["LOCALINFER_SCAN_DEFAULT_PORTS"] = "false"
os.environ["LOCALINFER_DISCOVERY_TIMEOUT"] = "5"
print(json.dumps({"wide": wide, "narrow": narrow}), flush=True)
code = main(["audit", "--json"])
print("EXIT", code, flush=True)
"""


@pytest.mark.integration
@needs_netns
def test_audit_in_a_loopback_only_namespace(tmp_path: Path) -> None:
    env = {**os.environ, "LOCALINFER_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    result = run_in_netns([sys.executable, "-c", AUDIT_SCRIPT], env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    ports = json.loads(lines[0])
    report = json.loads("\n".join(lines[1:-1]))
    assert lines[-1] == f"EXIT {EXIT_EXPOSED}"
    by_port = {e["port"]: e for e in report["exposure"]}
    wide, narrow = by_port[ports["wide"]], by_port[ports["narrow"]]
    assert wide["exposed"] is True and wide["auth"] == "none"
    assert wide["listens"] == [f"0.0.0.0:{ports['wide']}"]
    assert "answers anyone on your network without a password" in wide["message"]
    assert narrow["exposed"] is False and narrow["listens"] == [f"127.0.0.1:{ports['narrow']}"]


def test_audit_exit_zero_when_nothing_exposed(tmp_path: Path, run_app: RunApp,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url = run_app(OpenAICompatibleFake().app)  # AppServer binds 127.0.0.1
    monkeypatch.setenv("LOCALINFER_SERVERS", url)
    monkeypatch.setenv("LOCALINFER_SCAN_DEFAULT_PORTS", "false")
    monkeypatch.setenv("LOCALINFER_EMBEDDED", "off")
    monkeypatch.setenv("LOCALINFER_DISCOVERY_TIMEOUT", "5")
    code = main(["audit"])
    out = capsys.readouterr().out
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system: the audit says unknown")
    assert code == 0, out
    assert "this machine only" in out


LSOF = """p812
f5
n*:11434
f7
n127.0.0.1:8080
p913
f3
n[::1]:1234
f4
n[::]:8000
"""


def test_lsof_output_is_parsed_and_used_without_proc(tmp_path: Path, run_app: RunApp) -> None:
    from localinfer.audit import parse_lsof, read_listeners

    assert parse_lsof(LSOF) == [Listener("0.0.0.0", 11434), Listener("127.0.0.1", 8080),
                                Listener("::1", 1234), Listener("::", 8000)]
    port = int(run_app(OpenAICompatibleFake().app).rsplit(":", 1)[1])
    missing = [tmp_path / "no-proc-tcp"]
    import shutil
    if shutil.which("lsof") is None:
        assert read_listeners(missing) is None
        return
    found = read_listeners(missing)  # as on macOS: no /proc, lsof answers
    assert found is not None and Listener("127.0.0.1", port) in found
