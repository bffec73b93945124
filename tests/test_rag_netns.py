"""Documents never need the network: ingest, search and ask (answered by the embedded
llama.cpp engine on the bundled model) run inside a network namespace whose only
interface is loopback. The embedder's files were cached in the session home before;
nothing is fetched in there. Skipped where a network namespace cannot be created."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.netns import needs_netns, run_in_netns
from tests.support import rag as support
from tests.support.rag import cli, cli_env

embedder = support.embedder
rag_home = support.rag_home
corpus = support.corpus


pytestmark = [needs_netns,
              pytest.mark.integration, pytest.mark.slow]


def in_netns(env: dict[str, str], *args: str, timeout: float = 600
             ) -> subprocess.CompletedProcess[str]:
    return run_in_netns(cli(*args), env, timeout=timeout)


def test_ingest_search_and_ask_without_network(tmp_path: Path, rag_home: Path,
                                               embedder: object, corpus: Path) -> None:
    env = cli_env(rag_home, tmp_path / "index.db")

    added = in_netns(env, "index", "add", str(corpus), "--json")
    assert added.returncode == 0, added.stderr
    assert len(json.loads(added.stdout)["added"]) == 6

    found = in_netns(env, "search", "when is the observatory roof shut", "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    assert any(r["path"].endswith("observatory-manual.pdf")
               for r in json.loads(found.stdout)["results"])

    asked = in_netns(env, "ask", "When is the dome shutter closed?", "-k", "3",
                     "--max-tokens", "64", "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["answer"].strip()
    assert answer["tier"] == "embedded"
    assert [s["n"] for s in answer["sources"]] == [1, 2, 3]
    assert any(s["path"].endswith("observatory-manual.pdf") for s in answer["sources"])


def test_ask_with_no_local_tier_says_so(tmp_path: Path, rag_home: Path, embedder: object,
                                        corpus: Path) -> None:
    env = cli_env(rag_home, tmp_path / "index.db", LOCALINFER_EMBEDDED="off")
    assert in_netns(env, "index", "add", str(corpus / "garden.txt")).returncode == 0
    asked = in_netns(env, "ask", "How long are tomatoes hardened off?")
    assert asked.returncode == 3, asked.stderr
    lines = asked.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no local chat model can answer" in lines[0]
    assert "never sends documents off this machine" in lines[0]
