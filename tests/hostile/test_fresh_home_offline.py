"""Private documents work offline from the very first run (hardening §1): a brand-new
LOCALINFER_HOME, inside a network namespace whose only interface is loopback, indexes,
searches, answers and embeds; `strace -f` shows no connection attempt to anything but
loopback and no name lookup (tests/hostile/egress_trace.py), in every process, workers
included."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.hostile.egress_trace import egress_attempts, report, without_telemetry_silencers
from tests.netns import needs_netns, run_in_netns
from tests.support.rag import CORPUS, cli, cli_env

pytestmark = [pytest.mark.hostile, pytest.mark.integration, pytest.mark.slow, needs_netns,
              pytest.mark.skipif(shutil.which("strace") is None,
                                 reason="needs strace (apt-get install strace)"),
              # find_spec, not importorskip: importing onnxruntime here would start its
              # telemetry in the test process (localinfer imports it with that off).
              pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                 reason="needs the rag extra (onnxruntime)")]

def traced(tmp_path: Path, env: dict[str, str], name: str, *args: str
           ) -> tuple[int, str, str, str]:
    """(exit code, stdout, stderr, the strace log) of one CLI command."""
    log = tmp_path / f"{name}.strace"
    result = run_in_netns(["strace", "-f", "-k", "-qq", "-e",
                           "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(log), *cli(*args)],
                          env, timeout=900)
    return result.returncode, result.stdout, result.stderr, log.read_text()


def test_fresh_home_documents_offline_no_connection_attempts(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"  # never used before: nothing cached, nothing derived
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    # Without CI and the like: ONNX Runtime keeps quiet on its own when they are set.
    # `ask` starts the home's shared embedded engine, which outlives the CLI and is traced
    # too (strace -f): a short idle timeout ends it, and the trace, soon after the answer
    # (at the default 300 s each run waited 5 minutes for it).
    env = without_telemetry_silencers(
        cli_env(home, home / "index.db", LOCALINFER_EMBEDDED_THREADS="1",
                LOCALINFER_EMBEDDED_IDLE_TIMEOUT="5"))
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
    # Any attempt counts, from any process or library (ONNX Runtime's telemetry was the
    # last one, issue 26 §0); with -k, strace prints each one's native stack: who tried.
    attempts = [a for t in traces for a in egress_attempts(t)]
    assert attempts == [], report(attempts)
