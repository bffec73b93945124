"""Damaged state files: a clear line, the rest keeps working, nothing written over, and
consent fails closed (hardening §9). Fuzzed with hypothesis: any bytes, a clean error."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localinfer.consent import ConsentStore
from localinfer.errors import EgressBlocked, UsageError
from localinfer.http import EgressPolicy
from localinfer.ledger import EgressLedger
from localinfer.remote import ProviderStore
from localinfer.settings import Settings, read_config
from localinfer.statefile import StateFileError
from tests.hostile.cli import one_clean_line, run_cli

pytestmark = pytest.mark.hostile

URL = "https://api.example.com/v1"


def test_random_ledger_is_loud_and_repairable(tmp_path: Path) -> None:
    garbage = os.urandom(4096)
    (tmp_path / "egress.sqlite3").write_bytes(garbage)
    report = run_cli(tmp_path, "privacy")
    assert report.returncode == 2
    assert "privacy --repair" in one_clean_line(report)
    # A command that makes a client warns, every time, and still works.
    status = run_cli(tmp_path, "status", "--json", LOCALINFER_EMBEDDED="off")
    assert status.returncode == 0, status.stderr
    assert "not being recorded" in status.stderr
    assert json.loads(status.stdout)["servers"] == []
    repaired = run_cli(tmp_path, "privacy", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    [aside] = list(tmp_path.glob("egress.sqlite3.broken-*"))
    assert aside.read_bytes() == garbage  # moved, never deleted
    assert run_cli(tmp_path, "privacy").returncode == 0
    again = run_cli(tmp_path, "status", LOCALINFER_EMBEDDED="off")
    assert "not being recorded" not in again.stderr


def test_strict_ledger_refuses_what_it_cannot_record(tmp_path: Path) -> None:
    (tmp_path / "egress.sqlite3").write_bytes(b"not a database" * 100)
    ledger = EgressLedger.for_home(tmp_path)
    policy = EgressPolicy(recorders=[ledger], unrecordable=ledger.problem)
    with pytest.raises(EgressBlocked, match="could not be recorded"):
        policy.check(httpx.URL("https://api.example.com/v1/chat/completions"))
    policy.check(httpx.URL("http://127.0.0.1:8080/v1/models"))  # loopback is fine
    ledger.close()


@pytest.mark.parametrize("content", ["[1, 2]", "{\"grants\": [1]}", "{not json",
                                     "{\"grants\": {\"x\": {\"granted_at\": NaN}}}"])
def test_broken_consent_file_fails_closed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "consent.json"
    path.write_text(content)
    store = ConsentStore(tmp_path)
    assert store.valid("x", URL) is False
    listed = run_cli(tmp_path, "consent", "list")
    assert listed.returncode == 2
    line = one_clean_line(listed)
    assert "consent.json" in line and "fix or remove it" in line
    with pytest.raises(StateFileError):
        store.grant("x", URL)  # never overwrites what it could not read
    assert path.read_text() == content


def test_nan_grant_grants_nothing(tmp_path: Path) -> None:
    (tmp_path / "consent.json").write_text(json.dumps(
        {"grants": {"x": {"base_url": URL, "granted_at": "nan", "expires_at": None}}}))
    assert ConsentStore(tmp_path).valid("x", URL) is False
    assert run_cli(tmp_path, "consent", "list").returncode == 0


def test_broken_remotes_file(tmp_path: Path) -> None:
    (tmp_path / "remotes.json").write_text('{"remotes": [1]}')
    listed = run_cli(tmp_path, "remote", "list")
    assert listed.returncode == 2
    assert "remotes.json" in one_clean_line(listed)
    # The local tiers keep working: status has no remote, and says why once.
    status = run_cli(tmp_path, "status", "--json", LOCALINFER_EMBEDDED="off")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["remote"] == []
    assert "remote tier is off" in status.stderr


@pytest.mark.parametrize(("config", "said"), [
    ("[[[", "not valid TOML"),
    ("embedded_context = -5", "embedded_context"),
    ("port = \"eighty\"", "port"),
    (b"\xff\xfe", "not valid TOML"),
])
def test_bad_config_is_one_line_exit_2(tmp_path: Path, config: str | bytes, said: str) -> None:
    path = tmp_path / "config.toml"
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        path.write_text(config)
    for command in (["status"], ["models"], ["chat", "hi"], ["privacy"]):
        result = run_cli(tmp_path, *command)
        assert result.returncode == 2, (command, result.stderr)
        line = one_clean_line(result)
        assert said in line and "config.toml" in line


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "status", LOCALINFER_EMBEDDED_CONTEXT="-5")
    assert result.returncode == 2
    assert "LOCALINFER_EMBEDDED_CONTEXT" in one_clean_line(result)


# -- fuzz: any bytes in any state file give a clean error or a clean read ------------------

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
JSONISH = st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=6), st.dictionaries(
        st.sampled_from(["base_url", "granted_at", "expires_at", "key_env", "models"]),
        st.none() | st.floats() | st.text(max_size=6) | st.integers(), max_size=4),
        max_size=3).map(lambda d: json.dumps({"grants": d, "remotes": d}).encode()),
)


@FUZZ
@given(data=JSONISH)
def test_fuzz_consent_reader(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "consent.json").write_bytes(data)
    store = ConsentStore(tmp_path)
    assert store.valid("x", URL) in (True, False)
    try:
        grants = store.list()
    except StateFileError:
        return
    for grant in grants:  # whatever was accepted is a usable grant
        assert isinstance(grant.base_url, str) and grant.granted_at == grant.granted_at
        grant.to_json(0.0)


@FUZZ
@given(data=JSONISH)
def test_fuzz_remotes_reader(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "remotes.json").write_bytes(data)
    with contextlib.suppress(StateFileError):
        ProviderStore(tmp_path).all()


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_fuzz_config_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    try:
        read_config(path)
        Settings(home=tmp_path)
    except UsageError:
        pass


@FUZZ
@given(data=st.binary(min_size=1, max_size=2000))
def test_fuzz_ledger(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "egress.sqlite3"
    path.write_bytes(data)
    ledger = EgressLedger(path)
    try:
        problem = ledger.problem()
        assert problem is None or "privacy --repair" in problem
        try:
            ledger.report()
        except UsageError as exc:
            assert "privacy --repair" in exc.message
    finally:
        ledger.close()
