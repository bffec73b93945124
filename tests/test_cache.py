"""`localinfer cache list|rm|verify|path` on a cache filled by real pulls over loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer.assets import ModelCache, pull
from localinfer.cli.main import main
from localinfer.settings import Settings
from tests.support.file_server import FileServer, Served, blob, make_home, serve


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_home(tmp_path, monkeypatch)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    yield from serve()


@pytest.fixture
def two_models(home: Path, file_server: FileServer) -> dict[str, Served]:
    minimal_gguf = b"GGUF" + (3).to_bytes(4, "little") + bytes(16)  # v3, no tensors, no keys
    served = {"alpha.bin": Served(blob(200_000, seed=3)), "beta.gguf": Served(minimal_gguf)}
    for name, s in served.items():
        pull(file_server.add(f"/{name}", s), Settings(), sha256=s.sha256)
    return served


def test_cache_path_is_under_home(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "models")


def test_cache_list_empty_then_filled(home: Path, file_server: FileServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "list"]) == 0
    assert "No cached models" in capsys.readouterr().out
    s = Served(blob(100_000))
    pull(file_server.add("/x.onnx", s), Settings(), sha256=s.sha256, name="my-embedder")

    assert main(["cache", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    [entry] = [m for m in listing["models"] if m["name"] == "my-embedder"]
    assert entry["sha256"] == s.sha256 and entry["size"] == 100_000
    assert Path(entry["path"]).read_bytes() == s.data
    assert listing["cache_dir"] == str(home / "models")


def test_verify_reports_tampered_file_and_fails(two_models: dict[str, Served], home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "verify"]) == 0
    assert "2 ok, 0 bad" in capsys.readouterr().out

    victim = ModelCache(home / "models").blob_path(two_models["alpha.bin"].sha256)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as fh:
        fh.write(b"tampered")

    assert main(["cache", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = [f for f in report["files"] if not f["ok"]]
    assert report["ok"] is False and [f["names"] for f in bad] == [["alpha.bin"]]


def test_tampered_file_is_not_served_by_resolve(two_models: dict[str, Served], home: Path,
                                                file_server: FileServer) -> None:
    s = two_models["alpha.bin"]
    victim = ModelCache(home / "models").blob_path(s.sha256)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as fh:
        fh.write(b"tampered")

    again = pull(file_server.base_url + "/alpha.bin", Settings(), sha256=s.sha256)

    # The stamp no longer matches (mtime changed), so it was re-hashed, refused, fetched again.
    assert again.downloaded and again.path is not None and again.path.read_bytes() == s.data


def test_verify_reports_missing_file(two_models: dict[str, Served], home: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ModelCache(home / "models").blob_path(two_models["beta.gguf"].sha256).unlink()
    assert main(["cache", "verify"]) == 1
    assert "file missing" in capsys.readouterr().out


def test_rm_deletes_file_unless_another_name_uses_it(
        home: Path, file_server: FileServer, capsys: pytest.CaptureFixture[str]) -> None:
    s = Served(blob(50_000))
    url = file_server.add("/shared.bin", s)
    pull(url, Settings(), sha256=s.sha256, name="one")
    pull(url, Settings(), sha256=s.sha256, name="two")
    path = ModelCache(home / "models").blob_path(s.sha256)

    assert main(["cache", "rm", "one"]) == 0
    assert "another name uses it" in capsys.readouterr().out and path.exists()
    assert main(["cache", "rm", "two"]) == 0
    assert "freed 50.0 kB" in capsys.readouterr().out and not path.exists()


def test_rm_unknown_name_is_a_clear_error(home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "rm", "nope"]) == 4
    assert "model 'nope' not found" in capsys.readouterr().err
