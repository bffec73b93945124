"""Host URLs are validated and normalised in one place: no password is stored or echoed,
no quote or surrogate reaches config.toml or a header (hardening round 2, §5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localinfer.cli.main import main
from localinfer.gateway.ui import security_headers
from localinfer.settings import Settings, SettingsError
from tests.hostile.cli import one_clean_line, run_cli

pytestmark = pytest.mark.hostile

SECRET = "secretpw"
WITH_PASSWORD = f"http://user:{SECRET}@127.0.0.1:18142"


def test_hosts_add_refuses_a_password_without_echoing_it(
        isolated_environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hosts", "add", WITH_PASSWORD]) == 2
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "--token-env" in err
    config = isolated_environment / "config.toml"
    assert not config.exists() or SECRET not in config.read_text()


@pytest.mark.parametrize("url", [
    'http://127.0.0.1:18140/"x',
    "http://127.0.0.1:18140/\udcff",  # what a non-UTF-8 byte in argv becomes
    "http://127.0.0.1:18140/a b",
    "http://127.0.0.1:18140/x?q=1",
    "http://127.0.0.1:18140/%zz",
    "http://127.0.0.1:99999",
    "http://[::1",
    "http://exa mple.com:1",
    "ftp://127.0.0.1:21",
])
def test_hosts_add_refuses_what_no_url_may_hold(isolated_environment: Path, url: str) -> None:
    result = run_cli(isolated_environment, "hosts", "add", url, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    one_clean_line(result)
    config = isolated_environment / "config.toml"
    assert not config.exists() or "18140" not in config.read_text()


def test_hosts_add_normalises_what_it_writes(isolated_environment: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hosts", "add", "HTTP://LocalHost:18143/v1/", "--name", "box"]) == 0
    assert "http://localhost:18143" in capsys.readouterr().out
    assert 'url = "http://localhost:18143"' in (isolated_environment / "config.toml").read_text()


def test_a_password_in_localinfer_servers_is_refused_at_load(isolated_environment: Path) -> None:
    with pytest.raises(SettingsError) as info:
        Settings(servers=[WITH_PASSWORD])
    assert SECRET not in info.value.message and "token" in info.value.message
    result = run_cli(isolated_environment, "hosts", "list", LOCALINFER_SERVERS=WITH_PASSWORD)
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    assert "LOCALINFER_SERVERS" in one_clean_line(result)


def test_a_password_in_config_toml_hosts_is_refused_without_echo(
        isolated_environment: Path) -> None:
    (isolated_environment / "config.toml").write_text(
        f'[[hosts]]\nurl = "{WITH_PASSWORD}"\nname = "box"\n')
    result = run_cli(isolated_environment, "hosts", "list")
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    one_clean_line(result)


def test_the_ui_csp_names_origins_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, servers=["http://127.0.0.1:18144/v1"])
    # remotes.json / config.toml remotes are checked elsewhere; the header must hold only
    # an origin whatever a base_url says.
    settings.remotes = {"r": {"base_url": f"https://u:{SECRET}@api.example.com/v1"},
                        "q": {"base_url": "https://api.example.org/v1'; script-src *"}}
    csp = security_headers(settings)["content-security-policy"]
    assert SECRET not in csp and "script-src *" not in csp
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert connect.split()[3:] == ["http://127.0.0.1:18144"]  # the others are refused
