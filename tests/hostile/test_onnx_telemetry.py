"""ONNX Runtime phones home (issue 26 §0): its official wheel ships Microsoft's 1DS
telemetry, on by default. A process that loads the embedder and lives on resolved
``mobile.events.data.microsoft.com`` from ONNX Runtime's threads (20 DNS attempts in
150 s here before the fix) and wrote a device id and an event queue under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime``. Every import of onnxruntime now goes
through ``backends/onnx/runtime.py``, which sets ``ORT_DISABLE_TELEMETRY=1`` first.

The proofs run without the variables that silence ONNX Runtime by themselves (``CI``
among them), so they hold on a CI machine as on a laptop.
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localinfer.backends.onnx import runtime
from tests.hostile.egress_trace import egress_attempts, report, without_telemetry_silencers
from tests.netns import needs_netns, run_in_netns
from tests.support import rag as support

pytestmark = pytest.mark.hostile

embedder = support.embedder  # shared fixtures, bound here so pytest finds them
rag_home = support.rag_home

SRC = Path(runtime.__file__).resolve().parents[2]  # src/localinfer
DOOR = Path(runtime.__file__).resolve()
IDLE_SECONDS = 60  # telemetry's first upload attempt came within seconds, then retried

# Loads the default embedder, embeds once, then stays alive as a gateway would.
CHILD = """
import sys, time
from localinfer.rag import load_default_embedder
from localinfer.settings import Settings
load_default_embedder(Settings()).embed(["a private sentence"])
print("embedded", flush=True)
time.sleep(float(sys.argv[1]))
"""
DEVICE_ID_DIR = Path("Microsoft/DeveloperTools/.onnxruntime")


def onnxruntime_imports(path: Path) -> list[str]:
    """Each place in ``path`` that imports onnxruntime itself, as 'file:line'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names = [node.args[0].value]  # importlib.import_module("onnxruntime"), ...
        if any(n == "onnxruntime" or n.startswith("onnxruntime.") for n in names):
            found.append(f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}")
    return found


def test_every_import_of_onnxruntime_goes_through_the_one_door() -> None:
    direct = [hit for path in sorted(SRC.rglob("*.py")) if path != DOOR
              for hit in onnxruntime_imports(path)]
    assert direct == [], "import onnxruntime only via backends/onnx/runtime.py"
    assert onnxruntime_imports(DOOR), "the scan must see the door's own import"


def test_a_process_that_imported_onnxruntime_first_is_told(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    runtime.onnxruntime()  # now in sys.modules, as if an application had imported it
    monkeypatch.setattr(runtime, "_module", None)  # ... before localinfer's first use
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    with caplog.at_level(logging.WARNING, logger="localinfer"):
        assert runtime.onnxruntime() is sys.modules["onnxruntime"]
        runtime.onnxruntime()
    warned = [r for r in caplog.records if "ORT_DISABLE_TELEMETRY" in r.getMessage()]
    assert len(warned) == 1
    assert runtime.TELEMETRY_OFF.items() <= dict(os.environ).items()


def child_env(tmp_path: Path, home: Path) -> dict[str, str]:
    """The CLI's environment, with its own HOME and cache (to see what ONNX Runtime
    writes there) and none of the variables that would silence it for us."""
    env = support.cli_env(home, tmp_path / "index.db",
                          HOME=str(tmp_path / "user"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return without_telemetry_silencers(env)


def left_behind(tmp_path: Path) -> list[str]:
    return [str(p.relative_to(tmp_path)) for base in ("user/.cache", "cache")
            if (tmp_path / base / DEVICE_ID_DIR).exists()
            for p in (tmp_path / base / DEVICE_ID_DIR).iterdir()]


@pytest.mark.integration
def test_the_embedder_keeps_no_telemetry_device_id(tmp_path: Path, rag_home: Path,
                                                   embedder: object) -> None:
    """ONNX Runtime creates its device id and event queue only when its telemetry
    starts: a fast check of the switch, without a namespace."""
    result = subprocess.run([sys.executable, "-c", CHILD, "0"], env=child_env(tmp_path, rag_home),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "embedded" in result.stdout
    assert left_behind(tmp_path) == []


@pytest.mark.integration
@pytest.mark.slow
@needs_netns
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_long_lived_embedder_resolves_no_name(tmp_path: Path, rag_home: Path,
                                                embedder: object) -> None:
    """Load, embed, stay alive a minute inside a loopback-only namespace, every
    process traced: no lookup, no connection beyond loopback, from anyone."""
    log = tmp_path / "idle.strace"
    result = run_in_netns(["strace", "-f", "-k", "-qq", "-e",
                           "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(log),
                           sys.executable, "-c", CHILD, str(IDLE_SECONDS)],
                          child_env(tmp_path, rag_home), timeout=IDLE_SECONDS + 600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "embedded" in result.stdout
    attempts = egress_attempts(log.read_text())
    assert attempts == [], report(attempts)
    assert left_behind(tmp_path) == []


def test_the_trace_reader_counts_every_lookup_from_anyone() -> None:
    """No exemption by library: a DNS query from ONNX Runtime's stack counts as one
    from anywhere else; loopback traffic that is not DNS, and nscd asked for a user
    (not a host), do not."""
    lines = [
        '9 connect(3, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("10.0.0.53")}, 16) = -1 ENETUNREACH',
        ' > /x/onnxruntime/capi/onnxruntime_pybind11_state.so(f+0x1) [0x2]',
        '9 connect(4, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("127.0.0.53")}, 16) = 0',
        '9 connect(5, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        '9 sendto(6, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(443), '
        'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr)}, 28) = 1',
        '9 connect(7, {sa_family=AF_INET, sin_port=htons(8080), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '9 connect(8, {sa_family=AF_UNIX, sun_path="/tmp/worker.sock"}, 110) = 0',
        '9 connect(9, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        ' > /usr/lib/libc.so.6(getpwuid_r+0x18f) [0xd369f]',  # a user, not a host
        '9 sendto(5, "\\0", 1, 0, NULL, 0) = 1',
    ]
    attempts = egress_attempts("\n".join(lines) + "\n")
    assert [a.where for a in attempts] == ["10.0.0.53:53 (DNS)", "127.0.0.53:53 (DNS)",
                                           "/var/run/nscd/socket", "2001:db8::1"]
    assert "onnxruntime_pybind11_state" in attempts[0].excerpt
