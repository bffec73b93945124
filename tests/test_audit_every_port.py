"""`localinfer audit` on every port, inside a loopback-only network namespace (binding
0.0.0.0 and :: there reaches nobody): servers on default and non-default ports, IPv4 and
IPv6, none of them declared — the audit finds each through the socket table, names its
process and kind, says whether it answers without a key, and flags known dangers. A
plain TCP listener (a database) is reported as exposed but not as an inference server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from localinfer.audit import EXIT_EXPOSED
from localinfer.audit_dangers import Seen, dangers, llamacpp_build, version_tuple
from localinfer.discovery.answers import Answer
from tests.netns import needs_netns, run_in_netns
from tests.support.servers import REPO

SCRIPT = """
import json, socket, threading, uvicorn
from localinfer.cli.main import main
from tests.fakes import DockerModelRunnerFake, LlamaRouterFake, OllamaFake

def serve(app, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="critical"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        pass

serve(OllamaFake(version="0.5.7").app, "0.0.0.0", 9011)     # old Ollama, odd port
serve(OllamaFake(version="0.17.1").app, "0.0.0.0", 11434)   # current Ollama, its port
serve(LlamaRouterFake(mcp_proxy=True).app, "::", 9000)      # router + MCP proxy, IPv6
serve(DockerModelRunnerFake().app, "0.0.0.0", 12434)         # open CORS
serve(OllamaFake().app, "127.0.0.1", 9012)                   # this machine only
db = socket.socket(); db.bind(("0.0.0.0", 5432)); db.listen()  # a database
print("EXIT", main(["audit", "--json"]), flush=True)
"""


@pytest.mark.integration
@needs_netns
def test_audit_every_port_in_a_loopback_only_namespace(tmp_path: Path) -> None:
    env = {**os.environ, "LOCALINFER_HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "LOCALINFER_DISCOVERY_TIMEOUT": "5", "LOCALINFER_EMBEDDED": "off"}
    result = run_in_netns([sys.executable, "-c", SCRIPT], env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"EXIT {EXIT_EXPOSED}"
    report = {e["port"]: e for e in json.loads("\n".join(lines[:-1]))["exposure"]}
    old, current = report[9011], report[11434]
    assert (old["kind"], old["exposed"], old["auth"]) == ("ollama", True, "none")
    assert old["process"].startswith("python") and "CVE-2026-7482" in old["message"]
    assert (current["kind"], current["exposed"]) == ("ollama", True)
    assert not any("CVE" in d for d in current["dangers"])
    router = report[9000]
    assert (router["kind"], router["listens"]) == ("llama.cpp", ["[::]:9000"])
    assert any("router mode" in d for d in router["dangers"])
    assert any("/cors-proxy" in d for d in router["dangers"])
    assert any("CVE-2026-21869" in d for d in router["dangers"])
    assert any("CORS is open" in d for d in report[12434]["dangers"])
    db = report[5432]
    assert (db["identified"], db["exposed"]) == (False, True)
    assert 9012 not in report


def seen(kind: str, version: str | None, **answers: Answer) -> Seen:
    return Seen(kind, version, {path.replace("_", "/"): a for path, a in answers.items()})


@pytest.mark.parametrize("version, flagged", [("0.5.7", True), ("0.17.0", True),
                                              ("0.17.1", False), ("0.18.2", False),
                                              (None, False)])
def test_ollama_cve_by_version(version: str | None, flagged: bool) -> None:
    assert any("CVE-2026-7482" in d for d in dangers(seen("ollama", version))) is flagged


def test_llamacpp_n_discard_by_build(monkeypatch: pytest.MonkeyPatch) -> None:
    import localinfer.audit_dangers as module

    assert (llamacpp_build("b7100-1a2b3c4"), version_tuple("v0.17.1")) == (7100, (0, 17, 1))
    [unknown] = dangers(seen("llama.cpp", "b7100-1a2b3c4"))
    assert "cannot tell from the build number" in unknown
    monkeypatch.setattr(module, "LLAMACPP_N_DISCARD_FIXED_BUILD", 8000)
    assert "before b8000" in dangers(seen("llama.cpp", "b7100-1a2b3c4"))[0]
    assert dangers(seen("llama.cpp", "b8001-abc")) == []
