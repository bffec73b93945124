"""Downloads and the cache (hardening round 2, §6), against file servers on 127.0.0.1.

A server that sends no length cannot be pulled without a terminal unless the user gave
both --yes and --max-size; a file that should be GGUF is refused on its first bytes; a
killed pull leaves only its resumable part, which `cache list` shows and `cache rm` /
`cache clean` remove; a damaged manifest is one line, never overwritten, and `cache
repair` rebuilds it from the content-addressed blobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localinfer.cli.main import main
from tests.hostile.cli import REPO
from tests.support.file_server import blob, make_home
from tests.support.pull_server import GGUF_HEAD, MB, Body, Server, server

pytestmark = pytest.mark.hostile

__all__ = ["server"]  # the fixture, used by name


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_home(tmp_path_factory.mktemp("pull"), monkeypatch)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- no length, no terminal -----------------------------------------------------------

def test_no_length_needs_yes_and_max_size(home: Path, server: Server,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = "/nolength.gguf"
    url = server.add(path, Body(GGUF_HEAD + bytes(16 * MB), length=False, delay=0.005))
    partial = home / "models" / "partial"

    for args in ([], ["--yes"], ["--max-size", "64M"]):
        assert main(["pull", url, *args]) == 2, args
        err = capsys.readouterr().err
        assert "--yes" in err and "--max-size" in err, err
        assert server.sent.get(path, 0) < 8 * MB  # closed after the headers
        server.sent.pop(path, None)
        assert not partial.exists() or not any(partial.iterdir())  # nothing kept

    assert main(["pull", url, "--yes", "--max-size", "1M"]) == 10
    assert "--max-size" in capsys.readouterr().err
    assert not (home / "models" / "blobs").exists() or not any((home / "models" / "blobs")
                                                               .iterdir())
    assert not any(partial.iterdir())
    assert main(["pull", url, "--yes", "--max-size", "64M"]) == 0


def test_known_size_above_max_size_is_refused_before_the_body(
        home: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    url = server.add("/big.gguf", Body(GGUF_HEAD + bytes(2 * MB)))
    assert main(["pull", url, "--yes", "--max-size", "1M"]) == 2
    assert "--max-size" in capsys.readouterr().err
    assert server.sent.get("/big.gguf", 0) == 0


# --- the GGUF magic on the first bytes ----------------------------------------------------

def test_not_a_gguf_is_refused_on_its_first_bytes(home: Path, server: Server,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    page = b"<!doctype html><title>Sign in</title>" + bytes(16 * MB)
    url = server.add("/model.gguf", Body(page, delay=0.005))

    assert main(["pull", url, "--yes"]) == 5
    err = capsys.readouterr().err
    assert "not a GGUF file" in err and "Traceback" not in err
    assert server.sent["/model.gguf"] < 8 * MB  # it stopped long before the end
    assert _tree(home / "models") == [] or all(p.startswith("locks/")
                                               for p in _tree(home / "models"))


# --- a killed pull ---------------------------------------------------------------------------

def test_a_killed_pull_leaves_its_part_which_cache_lists_and_removes(
        home: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    url = server.add("/slow.gguf", Body(GGUF_HEAD + blob(6 * MB), delay=0.05))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update(LOCALINFER_HOME=str(home), LOCALINFER_SCAN_DEFAULT_PORTS="off")
    proc = subprocess.Popen([sys.executable, "-m", "localinfer.cli.main", "pull", url, "--yes",
                             "--name", "slow"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = home / "models" / "partial"
    deadline = time.monotonic() + 120
    while not any(p.suffix == ".part" and p.stat().st_size > MB for p in
                  (partial.iterdir() if partial.exists() else [])):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    left = [p for p in _tree(home / "models") if not p.startswith("locks/")]
    assert len(left) == 2 and {Path(p).suffix for p in left} == {".part", ".json"}, left
    assert all(p.startswith("partial/") for p in left)

    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "slow" in out and "partial" in out.lower() and url in out, out
    assert main(["cache", "list", "--json"]) == 0
    [part] = json.loads(capsys.readouterr().out)["partial"]
    assert part["name"] == "slow" and part["url"] == url and part["size"] > MB

    assert main(["cache", "rm", "slow"]) == 0
    assert "partial" in capsys.readouterr().out
    assert not any(partial.iterdir())


def test_cache_clean_removes_every_partial(home: Path, server: Server,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    partial = home / "models" / "partial"
    partial.mkdir(parents=True)
    (partial / "src-abc.part").write_bytes(b"x" * 1000)
    (partial / "src-abc.json").write_text(json.dumps({"url": "http://127.0.0.1:9/a.gguf",
                                                      "total": 5000, "name": "a"}))
    (partial / "src-def.part").write_bytes(b"y" * 10)
    assert main(["cache", "clean"]) == 0
    assert "2 partial downloads" in capsys.readouterr().out
    assert list(partial.iterdir()) == []


# --- a damaged manifest --------------------------------------------------------------------

def _pull_two(server: Server) -> dict[str, str]:
    shas: dict[str, str] = {}
    for name, data in (("alpha", GGUF_HEAD + blob(1000, seed=1)),
                       ("beta", GGUF_HEAD + blob(2000, seed=2))):
        url = server.add(f"/{name}.gguf", Body(data))
        assert main(["pull", url, "--name", name, "--json"]) == 0
        shas[name] = hashlib.sha256(data).hexdigest()
    return shas


def test_a_damaged_manifest_is_one_line_never_overwritten_and_repaired(
        home: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    shas = _pull_two(server)
    manifest = home / "models" / "manifest.json"
    raw = bytearray(manifest.read_bytes())
    at = raw.index(b"{", 1)  # the brace that opens "models": one flipped bit
    raw[at] ^= 0x01
    manifest.write_bytes(bytes(raw))
    capsys.readouterr()

    assert main(["cache", "list"]) == 2
    captured = capsys.readouterr()
    assert "No cached models" not in captured.out
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "manifest.json" in errors[0] and "cache repair" in errors[0]

    url = server.add("/gamma.gguf", Body(GGUF_HEAD + blob(500, seed=3)))
    assert main(["pull", url, "--name", "gamma"]) == 2
    assert manifest.read_bytes() == bytes(raw)  # never overwritten
    assert server.sent.get("/gamma.gguf", 0) == 0

    assert main(["cache", "repair"]) == 0
    capsys.readouterr()
    assert main(["cache", "list", "--json"]) == 0
    listed = {m["name"]: m["sha256"] for m in json.loads(capsys.readouterr().out)["models"]}
    assert listed == shas
    assert any(p.name.startswith("manifest.json.damaged") for p in manifest.parent.iterdir())
    assert main(["pull", url, "--name", "gamma"]) == 0  # and pulls work again


def test_repair_names_blobs_it_cannot_place(home: Path, server: Server,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    shas = _pull_two(server)
    manifest = home / "models" / "manifest.json"
    manifest.write_bytes(b"\x00" * 64)  # nothing to salvage
    assert main(["cache", "repair"]) == 0
    capsys.readouterr()
    assert main(["cache", "list", "--json"]) == 0
    listed = {m["sha256"]: m["name"] for m in json.loads(capsys.readouterr().out)["models"]}
    assert set(listed) == set(shas.values())
    assert all(listed[sha] == f"sha256-{sha[:12]}" for sha in shas.values())


def test_chat_side_readers_survive_a_damaged_manifest(home: Path, server: Server) -> None:
    from localinfer.assets import ModelCache
    from localinfer.settings import Settings

    _pull_two(server)
    (home / "models" / "manifest.json").write_text("{not json")
    cache = ModelCache.for_settings(Settings())
    assert cache.models() == [] and cache.get("alpha") is None  # lenient readers, warned
    problem = cache.problem()
    assert problem is not None and "cache repair" in problem.message
