"""A script that forgets ``close()`` must still exit, quietly (issue: hardening §0).

Each script runs in its own interpreter, exactly as a new user would write it; the test
fails if the interpreter is still alive after a generous deadline, exits non-zero, or
prints anything on stderr (aiohttp's "Unclosed connector" included).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.serve import ServerProcess, free_port

pytestmark = pytest.mark.hostile

REPO = Path(__file__).resolve().parents[2]
EXIT_DEADLINE = 60.0  # generous: a loaded 2-core machine imports slowly; a hang is forever


def run_script(code: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    environment.update(LOCALINFER_HOME=str(home), LOCALINFER_SCAN_DEFAULT_PORTS="off",
                       LOCALINFER_EMBEDDED_THREADS="1", **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          env=environment, capture_output=True, text=True,
                          timeout=EXIT_DEADLINE, stdin=subprocess.DEVNULL)


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[str]:
    """A protocol fake of an OpenAI-compatible server in its own process."""
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.fakes", "openai-compatible",
                            "--port", str(port)], f"http://127.0.0.1:{port}/v1/models",
                           log=tmp_path / "fake.log", timeout=60)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


SCRIPT = """
    import localinfer
    client = localinfer.Client()
    print(client.chat("Say hi.", max_tokens=8).text)
"""


@pytest.mark.integration
def test_unclosed_client_exits_with_the_embedded_tier(tmp_path: Path) -> None:
    result = run_script(SCRIPT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # an answer was printed
    assert result.stderr == ""


def test_unclosed_client_exits_with_a_local_server(tmp_path: Path, local_server: str) -> None:
    result = run_script(SCRIPT, tmp_path, LOCALINFER_SERVERS=local_server,
                        LOCALINFER_EMBEDDED="off")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr == ""


def test_twenty_unclosed_clients_exit(tmp_path: Path, local_server: str) -> None:
    code = """
        import localinfer
        clients = [localinfer.Client() for _ in range(20)]
        for c in clients:
            c.chat("Hi", max_tokens=2)
        print(len(clients))
    """
    result = run_script(code, tmp_path, LOCALINFER_SERVERS=local_server,
                        LOCALINFER_EMBEDDED="off")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "20"
    assert result.stderr == ""


def test_status_only_client_exits(tmp_path: Path) -> None:
    result = run_script("import localinfer; c = localinfer.Client(); c.status()", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_with_block_still_closes(tmp_path: Path, local_server: str) -> None:
    code = """
        import threading, localinfer
        with localinfer.Client() as c:
            c.chat("Hi", max_tokens=2)
        # After the block, no loop thread of ours is left running.
        print(sorted(t.name for t in threading.enumerate() if t.name == "localinfer-client"))
    """
    result = run_script(code, tmp_path, LOCALINFER_SERVERS=local_server,
                        LOCALINFER_EMBEDDED="off")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
