"""Private documents work offline from the very first run (hardening §1): a brand-new
LOCALINFER_HOME, inside a network namespace whose only interface is loopback, indexes,
searches, answers and embeds; `strace -f -e trace=connect` shows no connection attempt
to anything but loopback (and local sockets), in every process, workers included."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.netns import needs_netns, run_in_netns
from tests.test_rag_support import CORPUS, cli, cli_env

pytestmark = [pytest.mark.hostile, pytest.mark.integration, pytest.mark.slow, needs_netns,
              pytest.mark.skipif(shutil.which("strace") is None,
                                 reason="needs strace (apt-get install strace)")]

# connect(fd, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("1.2.3.4")}, …)
_INET = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, [^}]*?'
                   r'(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


def non_loopback_connects(trace: str) -> list[str]:
    found = []
    for match in _INET.finditer(trace):
        address = match.group(1) or match.group(2)
        if not (address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")):
            found.append(address)
    return found


def traced(tmp_path: Path, env: dict[str, str], name: str, *args: str
           ) -> tuple[int, str, str, str]:
    """(exit code, stdout, stderr, the strace log) of one CLI command."""
    log = tmp_path / f"{name}.strace"
    result = run_in_netns(["strace", "-f", "-k", "-qq", "-e", "trace=connect", "-o", str(log),
                           *cli(*args)], env, timeout=900)
    return result.returncode, result.stdout, result.stderr, log.read_text()


def test_fresh_home_documents_offline_no_connection_attempts(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    home = tmp_path / "fresh-home"  # never used before: nothing cached, nothing derived
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    env = cli_env(home, home / "index.db", LOCALINFER_EMBEDDED_THREADS="1")
    traces = []
    code, out, err, trace = traced(tmp_path, env, "add", "index", "add", str(corpus), "--json")
    assert code == 0, err
    assert len(json.loads(out)["added"]) == 6
    traces.append(trace)
    code, out, err, trace = traced(tmp_path, env, "search", "search",
                                   "when is the observatory roof shut", "--json", "-k", "3")
    assert code == 0, err
    assert any(r["path"].endswith("observatory-manual.pdf")
               for r in json.loads(out)["results"])
    traces.append(trace)
    code, out, err, trace = traced(tmp_path, env, "ask", "ask", "When is the dome shutter closed?",
                                   "-k", "3", "--max-tokens", "16", "--json")
    assert code == 0, err
    assert json.loads(out)["tier"] == "embedded"
    traces.append(trace)
    code, out, err, trace = traced(tmp_path, env, "embed", "embed", "a private sentence")
    assert code == 0, err
    traces.append(trace)
    attempts = [a for t in traces for a in non_loopback_connects(t)]
    # With -k, strace prints each attempt's native stack: the failure shows who tried.
    where = "\n".join(t[max(0, t.find(a) - 200):t.find(a) + 3000]
                      for t in traces for a in non_loopback_connects(t)[:1])
    assert attempts == [], where
