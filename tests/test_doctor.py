"""`localinfer doctor`: one line per part, exit 0 only when every part holds.

The browser files are a small stand-in vendor/ (tests/support/fake_vendor.py); the engine is
the installed xllamacpp (only asked what it is, never started); the model is the bundled
GGUF ./dev installs; the one server is a protocol fake on loopback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from localinfer.assets.cache import ModelCache
from localinfer.cli.doctor import EXIT_UNHEALTHY
from localinfer.cli.main import main
from tests.fakes.ollama import OllamaFake
from tests.support.fake_vendor import vendor_dir
from tests.support.servers import RunApp

__all__ = ["vendor_dir"]  # the fixture, shared


@pytest.fixture
def home(isolated_environment: Path, vendor_dir: Path, run_app: RunApp,
         monkeypatch: pytest.MonkeyPatch) -> Path:
    """A healthy home: no state files yet, one fake Ollama configured, no port scan."""
    monkeypatch.setenv("LOCALINFER_SCAN_DEFAULT_PORTS", "0")
    monkeypatch.setenv("LOCALINFER_SERVERS", run_app(OllamaFake().app))
    return isolated_environment


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """(exit code, {check: its line}) from `localinfer doctor`."""
    code = main(["doctor"])
    lines = capsys.readouterr().out.splitlines()
    by_name = {}
    for line in lines:
        mark, rest = line.split(None, 1)
        name, detail = rest.split("  ", 1)
        by_name[name.strip()] = f"{mark} {detail.strip()}"
    return code, by_name


def test_a_healthy_home_passes_every_check(home: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = doctor(capsys)
    assert code == 0, lines
    assert list(lines) == ["settings", "engine", "model", "browser files", "servers",
                           "consent.json", "remotes.json", "egress ledger",
                           "models manifest", "tokens.json"]
    assert all(line.startswith("ok ") for line in lines.values()), lines
    assert "xllamacpp" in lines["engine"]
    assert "sha256 verified" in lines["model"] and "sha256 verified" in lines["browser files"]
    port = lines["servers"].rsplit(":", 1)[-1]
    assert lines["servers"].startswith("ok 1 found: ollama on 127.0.0.1:") and port.isdigit()


def test_a_damaged_consent_file_fails_and_names_it(home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (home / "consent.json").write_text('{"grants": {"openai": {"base_', encoding="utf-8")
    code, lines = doctor(capsys)
    assert code == EXIT_UNHEALTHY
    assert lines["consent.json"].startswith(f"FAIL {home / 'consent.json'}: ")
    assert "fix or remove it" in lines["consent.json"]
    # The other checks still ran, and held.
    assert [n for n, line in lines.items() if not line.startswith("ok ")] == ["consent.json"]


def test_bad_config_and_damaged_files_each_get_their_line(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "config.toml").write_text("embedded = [", encoding="utf-8")
    (home / "tokens.json").write_text("not json", encoding="utf-8")
    (home / "models").mkdir()
    (home / "models" / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    code, lines = doctor(capsys)
    assert code == EXIT_UNHEALTHY
    assert lines["settings"].startswith("FAIL ") and "not valid TOML" in lines["settings"]
    assert lines["tokens.json"].startswith(f"FAIL {home / 'tokens.json'}")
    assert lines["models manifest"].startswith(f"FAIL {home / 'models' / 'manifest.json'}: ")
    assert "`localinfer cache repair`" in lines["models manifest"]


def test_json_output_and_a_missing_browser_file(home: Path, vendor_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (vendor_dir / "wllama" / "index.js").unlink()
    assert main(["doctor", "--json"]) == EXIT_UNHEALTHY
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == EXIT_UNHEALTHY
    [browser] = [c for c in report["checks"] if c["name"] == "browser files"]
    assert browser["ok"] is False and "vendor/wllama/index.js is missing" in browser["detail"]


def cached_blob(home: Path, content: bytes) -> Path:
    """A model file in the cache's blob store, under its sha256 (as a pull leaves it)."""
    cache = ModelCache(home / "models")
    cache.ensure()
    blob = cache.blob_path(hashlib.sha256(content).hexdigest())
    blob.write_bytes(content)
    return blob


def test_a_damaged_manifest_points_at_cache_repair_which_fixes_it(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cached_blob(home, b"model bytes " * 100)
    manifest = home / "models" / "manifest.json"
    manifest.write_text('{"models": {"tiny": {"sha256": "ab', encoding="utf-8")
    code, lines = doctor(capsys)
    assert code == EXIT_UNHEALTHY
    line = lines["models manifest"]
    # The cache's own complaint (ModelCache.problem), naming the file and the fix.
    assert line.startswith(f"FAIL {manifest}: is not valid JSON")
    assert "run `localinfer cache repair`" in line and "move it aside" not in line
    assert main(["cache", "repair"]) == 0
    capsys.readouterr()
    code, lines = doctor(capsys)
    assert code == 0, lines
    assert lines["models manifest"] == f"ok {manifest}: 1 models, files present"


def test_a_listed_model_whose_file_is_gone_points_at_cache_repair(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blob = cached_blob(home, b"other bytes " * 100)
    assert main(["cache", "repair"]) == 0  # names the file: one entry in the manifest
    blob.unlink()
    capsys.readouterr()
    code, lines = doctor(capsys)
    assert code == EXIT_UNHEALTHY
    line = lines["models manifest"]
    assert "listed but their files are gone" in line
    assert "run `localinfer cache repair` to drop them" in line
    assert main(["cache", "repair"]) == 0
    capsys.readouterr()
    code, lines = doctor(capsys)
    assert code == 0, lines
    assert lines["models manifest"].endswith(": 0 models, files present")
