"""Settings resolve config.toml from their own home (code-health bug: it used to be
the environment's home), and precedence holds: keyword, environment, file, default."""

from __future__ import annotations

from pathlib import Path

import pytest

from localinfer.settings import Settings

pytestmark = pytest.mark.unit


def test_home_keyword_reads_that_homes_config(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env_home, own_home = tmp_path / "a", tmp_path / "b"
    for home, port in ((env_home, 1111), (own_home, 2222)):
        home.mkdir()
        (home / "config.toml").write_text(f"port = {port}\n")
    monkeypatch.setenv("LOCALINFER_HOME", str(env_home))
    assert Settings().port == 1111
    assert Settings(home=own_home).port == 2222  # not A's config


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text("port = 1111\nhost = '127.0.0.2'\n"
                                          "discovery_ttl = 9\n")
    monkeypatch.setenv("LOCALINFER_PORT", "2222")
    settings = Settings(home=tmp_path, discovery_ttl=3)
    assert settings.port == 2222  # environment over file
    assert settings.host == "127.0.0.2"  # file over default
    assert settings.discovery_ttl == 3  # keyword over everything
    assert settings.connect_timeout == 3.0  # default


def test_every_test_gets_a_clean_environment() -> None:
    import os

    home = Path(os.environ["LOCALINFER_HOME"])
    assert home.is_dir() and not any(home.iterdir())
    assert not [n for n in os.environ
                if n.startswith("LOCALINFER_") and n not in ("LOCALINFER_HOME",)
                and not n.startswith("LOCALINFER_TEST_")]


def test_serve_listens_before_it_announces() -> None:
    """A client that connects right after `localinfer serve` prints its URL must not be
    refused: the socket is listening when bind() returns (it used to only be bound)."""
    import socket

    from localinfer.cli.serve import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass  # accepted into the backlog, though nobody called accept() yet
    finally:
        sock.close()
