"""Discovery beyond the default ports: the listening-socket table and its owners.

The process match is proved with a real process whose kernel-visible name is the
server's: a symlink named ``llama-server`` to this venv's Python runs a protocol fake,
so ``/proc/<pid>/comm`` and ``argv[0]`` say ``llama-server`` exactly as the real binary's
would (``exec -a`` would change argv[0] only, not comm). A plain TCP listener owned by
another program (this pytest process) plays a database: it must never receive a byte.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localinfer.discovery import discover
from localinfer.discovery.processes import server_kind
from localinfer.discovery.sockets import parse_proc_net, read_listeners
from localinfer.http import EgressPolicy
from localinfer.settings import Settings
from tests.fakes.serve import free_port
from tests.support.servers import REPO

GUARD = 30.0


@pytest.mark.parametrize("comm, argv, kind", [
    ("llama-server", ["/opt/llama/llama-server", "--port", "9000"], "llama.cpp"),
    ("ollama", ["/usr/local/bin/ollama", "serve"], "ollama"),
    ("python3", ["python3", "-m", "vllm.entrypoints.openai.api_server"], "vllm"),
    ("vllm", ["/usr/bin/python3", "/usr/local/bin/vllm", "serve", "x"], "vllm"),
    ("python3.12", ["python3.12", "-m", "llama_cpp.server", "--model", "m.gguf"],
     "openai-compatible"),
    ("python3", ["python3", "-m", "xllamacpp.server"], "llama.cpp"),
    ("python3", ["python3", "koboldcpp.py", "--port", "5002"], "koboldcpp"),
    ("Inference.Servi", ["Inference.Service.Agent"], "foundry-local"),
    ("llmster", ["llmster"], "lmstudio"),
    ("lemonade-server", ["lemonade-server", "serve"], "lemonade"),
    ("nexa", ["nexa", "serve"], "nexa"),
    ("docker-proxy", ["docker-proxy", "-proto", "tcp", "-host-port", "12434",
                      "-container-port", "12434"], "docker-model-runner"),
    # Not inference servers, even when their arguments mention one.
    ("docker-proxy", ["docker-proxy", "-proto", "tcp", "-container-port", "5432"], None),
    ("postgres", ["postgres", "-D", "/var/lib/postgresql"], None),
    ("python3", ["python3", "-m", "pytest", "-k", "koboldcpp"], None),
    ("bash", ["bash", "-c", "llama-server"], None),
])
def test_process_rules(comm: str, argv: list[str], kind: str | None) -> None:
    assert server_kind(comm, argv) == kind


def test_socket_table_has_inodes_matching_proc() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = {(s.address, s.port): s for s in read_listeners() or []}
        from_proc = {(s.address, s.port): s for s in
                     parse_proc_net(Path("/proc/net/tcp").read_text())}
    assert found[("127.0.0.1", port)].inode == from_proc[("127.0.0.1", port)].inode != 0


class Database:
    """A TCP listener that records every byte it is sent, in accept order."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.marker_seen = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.marker_seen.is_set():
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
            if data == b"MARKER":
                self.marker_seen.set()
            else:
                self.received.append(data)

    def bytes_before_marker(self) -> list[bytes]:
        # Connections are accepted in order: whatever discovery sent was seen first.
        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            conn.sendall(b"MARKER")
        assert self.marker_seen.wait(GUARD)
        return self.received


@pytest.fixture
def llama_named_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The router-mode fake run by a process the kernel knows as `llama-server`."""
    exe = tmp_path_factory.mktemp("bin") / "llama-server"
    exe.symlink_to(sys.executable)
    port = free_port()
    # The symlink is outside the venv, so the venv's packages come by PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), sysconfig.get_paths()["purelib"]])}
    process = subprocess.Popen([str(exe), "-m", "tests.fakes", "llama.cpp", "--port",
                                str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + GUARD * 4
        while not _answers(url + "/health"):
            assert process.poll() is None, "the llama-server-named fake exited"
            assert time.monotonic() < deadline, "the llama-server-named fake never answered"
            time.sleep(0.1)
        assert Path(f"/proc/{process.pid}/comm").read_text().strip() == "llama-server"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="Linux socket table")
async def test_server_program_on_any_port_is_found_and_a_database_is_never_probed(
        llama_named_fake: str) -> None:
    database = Database()
    found = await asyncio.wait_for(discover(Settings(scan_default_ports=True, servers=[],
                                                     discovery_timeout=5.0),
                                            EgressPolicy()), GUARD)
    kinds = {s.base_url: s for s in found}
    assert llama_named_fake in kinds, [s.base_url for s in found]
    server = kinds[llama_named_fake]
    assert server.kind == "llama.cpp"
    assert {m.id: m.loaded for m in server.models} == {
        "qwen2.5-0.5b-instruct": True, "smollm2-135m-instruct": False,
        "nomic-embed-text-v1.5": False}
    assert database.bytes_before_marker() == []
