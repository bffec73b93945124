"""Consent grants: durations, persistence, expiry, binding to the provider's URL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from localinfer.consent import ConsentStore, parse_duration
from localinfer.errors import UsageError
from tests.support.clock import ManualClock

URL = "https://api.example.com/v1"


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("7d", 7 * 86400),
    ("2w", 14 * 86400), ("1.5h", 5400), (" 2H ", 7200),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "-1h", "0s", "1h junk", "1h-2m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_grant_revoke_list_persist(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path)
    assert not store.valid("p", URL) and store.list() == []
    store.grant("p", URL)
    # A second store (another process) sees the grant: nothing is cached.
    other = ConsentStore(tmp_path)
    assert other.valid("p", URL)
    assert [g.provider for g in other.list()] == ["p"]
    assert other.revoke("p") is True
    assert not store.valid("p", URL)
    assert store.revoke("p") is False


def test_grant_file_is_private_and_holds_no_secret(tmp_path: Path) -> None:
    ConsentStore(tmp_path).grant("p", URL, duration=60)
    path = tmp_path / "consent.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entry = json.loads(path.read_text())["grants"]["p"]
    assert set(entry) == {"base_url", "granted_at", "expires_at"}


def test_expiry_follows_the_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    store = ConsentStore(tmp_path, clock=clock)
    grant = store.grant("p", URL, duration=3600)
    assert grant.expires_at == clock.now + 3600
    clock.now += 3599
    assert store.valid("p", URL)
    clock.now += 1
    assert not store.valid("p", URL)
    assert store.get("p") is not None and store.get("p").expired(clock.now)  # type: ignore[union-attr]


def test_grant_is_bound_to_the_url(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path)
    store.grant("p", URL)
    assert not store.valid("p", "https://elsewhere.example.com/v1")


def test_damaged_entries_grant_nothing(tmp_path: Path) -> None:
    (tmp_path / "consent.json").write_text(json.dumps({"grants": {
        "ok": {"base_url": URL, "granted_at": 1.0, "expires_at": None},
        "broken": {"granted_at": "yesterday"},
    }}))
    store = ConsentStore(tmp_path)
    assert store.valid("ok", URL)
    assert not store.valid("broken", URL)


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "consent.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"consent\.json: is not valid JSON"):
        ConsentStore(tmp_path).list()
