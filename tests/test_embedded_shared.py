"""One engine per home, shared by every process (issue 21 §2): separate processes find
the running engine through the home's state file and use it; other settings replace it;
a stale, damaged or lying state file is never trusted; the engine stops by itself when
idle. Real processes and the real engine on the bundled GGUF."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localinfer.assets.bundled import MODEL_ID
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.backends.embedded.supervisor import STATE_FILE, engine_processes
from localinfer.settings import Settings
from tests.support.engine import ask, gone, wait_gone

pytestmark = pytest.mark.integration

THREADS = os.environ.get("LOCALINFER_TEST_THREADS", "2")
REPO = Path(__file__).resolve().parent.parent

# A separate process that asks the embedded tier one question and prints the engine's pid.
ASK = """
import asyncio, sys
from localinfer import AsyncClient, Settings
async def main():
    async with AsyncClient(Settings(scan_default_ports=False)) as client:
        reply = await client.chat("Say yes.", max_tokens=4)
        [engine] = [b for b in await client.router.embedded_backends() if b.name == "embedded"]
        print(reply.tier, engine.engine_pid)
asyncio.run(main())
"""


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LOCALINFER_HOME": str(home), "LOCALINFER_SCAN_DEFAULT_PORTS": "0",
            "LOCALINFER_EMBEDDED_THREADS": THREADS, "PYTHONPATH": str(REPO), **extra}


def ask_in_process(home: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", ASK], env=env_for(home, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def engine_pid_of(proc: subprocess.Popen[str]) -> int:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    tier, pid = out.split()
    assert tier == "embedded"
    return int(pid)


def engines_of(home: Path) -> list[int]:
    return [pid for pid, where in engine_processes().items() if where == home]


def settings_of(home: Path, **overrides: object) -> Settings:
    return Settings(home=home, scan_default_ports=False,  # type: ignore[arg-type]
                    embedded_threads=int(THREADS), **overrides)


def test_processes_of_one_home_share_one_engine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, second = ask_in_process(home), ask_in_process(home)
    pids = {engine_pid_of(first), engine_pid_of(second)}
    assert len(pids) == 1  # both were served by the same engine process
    assert engines_of(home) == list(pids)
    # Both clients exited (without stopping it): the engine stays for the next process.
    assert engine_pid_of(ask_in_process(home)) in pids


def test_state_file_is_readable_by_the_user_only(tmp_path: Path) -> None:
    engine_pid_of(ask_in_process(tmp_path))
    mode = stat.S_IMODE((tmp_path / STATE_FILE).stat().st_mode)
    assert mode == 0o600
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["url"].startswith("http://127.0.0.1:") and len(state["key"]) >= 24


def test_other_settings_replace_the_engine_at_once(tmp_path: Path) -> None:
    old = engine_pid_of(ask_in_process(tmp_path))
    new = engine_pid_of(ask_in_process(tmp_path, LOCALINFER_EMBEDDED_CONTEXT="1024"))
    assert new != old and gone(old)
    assert engines_of(tmp_path) == [new]


@pytest.mark.parametrize("state", [
    "{not json", "[1, 2]", '{"url": "http://10.0.0.1:80", "key": "k", "pid": 1, '
    '"fingerprint": "x"}', "SELF"])
async def test_a_stale_or_damaged_state_file_is_replaced_never_trusted(
        tmp_path: Path, state: str) -> None:
    if state == "SELF":  # a live process that is not an engine: never signalled
        state = json.dumps({"url": "http://127.0.0.1:9", "key": "k" * 24, "pid": os.getpid(),
                            "fingerprint": "x", "started": 0})
    (tmp_path / STATE_FILE).write_text(state)
    backend = EmbeddedBackend(settings_of(tmp_path))
    reply = await backend.chat(ask("Say yes.", max_tokens=4), MODEL_ID)
    assert reply.text and backend.engine_pid not in (None, os.getpid())
    await backend.stop_engine()


async def test_an_engine_that_does_not_answer_its_key_is_replaced(tmp_path: Path) -> None:
    backend = EmbeddedBackend(settings_of(tmp_path))
    old = (await backend.warm()).pid
    await backend.aclose()
    state = json.loads((tmp_path / STATE_FILE).read_text())
    state["key"] = "not-the-key-" + "x" * 20  # a planted file pointing at the engine
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    other = EmbeddedBackend(settings_of(tmp_path))
    reply = await other.chat(ask("Say yes.", max_tokens=4), MODEL_ID)
    assert reply.text and other.engine_pid != old
    assert await wait_gone(old)
    await other.stop_engine()


async def test_the_engine_stops_by_itself_when_idle(tmp_path: Path) -> None:
    backend = EmbeddedBackend(settings_of(tmp_path, embedded_idle_timeout=2.0))
    await backend.chat(ask("Say yes.", max_tokens=4), MODEL_ID)
    pid = backend.engine_pid
    assert pid is not None
    await backend.aclose()
    assert await wait_gone(pid, timeout=120)  # no orphan once nobody asks
    assert not (tmp_path / STATE_FILE).exists()
    # ...and the next request simply starts a fresh one.
    reply = await backend.chat(ask("Say yes.", max_tokens=4), MODEL_ID)
    assert reply.text and backend.engine_pid not in (None, pid)
    await backend.stop_engine()


def test_a_script_that_never_closes_exits_at_once_and_leaves_the_engine(tmp_path: Path) -> None:
    script = ("from localinfer import Client, Settings\n"
              "c = Client(Settings(scan_default_ports=False))\n"
              "print(c.chat('Say yes.', max_tokens=4).tier)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "embedded" and done.stderr == ""
    assert time.monotonic() - started < 300
    assert len(engines_of(tmp_path)) == 1  # shared: it outlives the script, until idle


async def test_two_processes_stream_at_once_through_one_engine(tmp_path: Path) -> None:
    procs = [ask_in_process(tmp_path) for _ in range(3)]
    pids = await asyncio.gather(*(asyncio.to_thread(engine_pid_of, p) for p in procs))
    assert len(set(pids)) == 1


def test_status_names_the_engine_build_and_what_it_computes_with(tmp_path: Path) -> None:
    engine_pid_of(ask_in_process(tmp_path))  # an engine runs: status asks it, not a probe
    done = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "status", "--json"],
                          env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    compute = json.loads(done.stdout)["embedded"]["compute"]
    assert compute["source"] == "engine"
    assert compute["engine"]["package"] == "xllamacpp" and compute["engine"]["version"]
    assert "AVX2" in compute["cpu_features"] or compute["cpu_features"]
    assert compute["devices"] and compute["devices"][0]["name"] == "CPU"
    assert compute["gpu_offload"]["layers_requested"] == -1
    text = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "status"],
                          env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert "llama.cpp via xllamacpp" in text.stdout


def test_engine_status_and_stop_commands(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "localinfer.cli.main", *args],
                              env=env_for(tmp_path), capture_output=True, text=True,
                              timeout=120)

    assert cli("engine", "status").stdout.startswith("not running")
    pid = engine_pid_of(ask_in_process(tmp_path))
    shown = cli("engine", "status", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["pid"] == pid
    assert "key" not in shown.stdout  # the key stays in the user-only state file
    stopped = cli("engine", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert gone(pid) and engines_of(tmp_path) == []
