"""Egress ledger: buffered writes that are never lost, retention, the privacy report,
and that nothing but scheme, host, port and path is stored."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from localinfer.http import EgressPolicy, EgressRecord, make_client, network_class
from localinfer.ledger import EgressLedger
from localinfer.types import Tier
from tests.support.transport import mock_transport

SECRET = "sk-very-secret-key-123"
PROMPT = "my private medical question"


def rec(host: str, *, tier: Tier = "local", t: float | None = None, port: int = 80,
        sent: int = 10, received: int = 20, purpose: str = "backend",
        error: str | None = None) -> EgressRecord:
    return EgressRecord(time=time.time() if t is None else t, method="POST", scheme="http",
                        host=host, port=port, path="/v1/chat/completions", bytes_sent=sent,
                        bytes_received=received, status=None if error else 200,
                        network=network_class(host), tier=tier,
                        purpose=purpose,  # type: ignore[arg-type]
                        error=error)


def test_records_are_buffered_then_flushed(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3", flush_interval=3600)
    ledger(rec("127.0.0.1"))
    ledger(rec("127.0.0.1"))
    assert ledger.pending() == 2
    assert not (tmp_path / "l.sqlite3").exists()  # recording did no I/O
    assert ledger.flush() == 2
    assert ledger.pending() == 0
    assert [r.host for r in ledger.records()] == ["127.0.0.1", "127.0.0.1"]
    ledger.close()


def wait_for_rows(path: Path, n: int) -> int:
    reader = EgressLedger(path)
    deadline = time.monotonic() + 10
    while len(reader.records()) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    found = len(reader.records())
    reader.close()
    return found


def test_full_batch_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3", flush_interval=3600, batch_size=3)
    for _ in range(3):
        ledger(rec("127.0.0.1"))
    assert wait_for_rows(tmp_path / "l.sqlite3", 3) == 3
    ledger.close()


def test_background_writer_flushes_after_the_interval(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3", flush_interval=0.05)
    ledger(rec("127.0.0.1"))
    assert wait_for_rows(tmp_path / "l.sqlite3", 1) == 1
    ledger(rec("127.0.0.1"))  # the writer goes back to sleep and wakes again
    assert wait_for_rows(tmp_path / "l.sqlite3", 2) == 2
    ledger.close()


def test_records_after_close_are_written_at_once(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3", flush_interval=3600)
    ledger.close()
    ledger(rec("127.0.0.1"))
    assert ledger.pending() == 0 and len(ledger.records()) == 1


def test_records_survive_process_exit_without_close(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    code = (
        "import sys, time\n"
        "from localinfer.http import EgressRecord\n"
        "from localinfer.ledger import EgressLedger\n"
        "ledger = EgressLedger(__import__('pathlib').Path(sys.argv[1]), flush_interval=3600)\n"
        "for i in range(5):\n"
        "    ledger(EgressRecord(time=time.time(), method='GET', scheme='http',"
        " host='192.168.1.20', port=11434, path='/api/tags', bytes_sent=0,"
        " bytes_received=7, status=200, network='private', tier='local',"
        " purpose='discovery'))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    records = EgressLedger(path).records()
    assert len(records) == 5 and {r.host for r in records} == {"192.168.1.20"}


def test_retention_by_age_and_rows(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3", retention_seconds=3600, max_rows=3)
    now = time.time()
    ledger(rec("10.0.0.1", t=now - 7200))  # older than the retention window
    for i in range(5):
        ledger(rec(f"10.0.0.{i + 2}", t=now - 10 + i))
    ledger.flush()
    kept = [r.host for r in ledger.records()]
    assert kept == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]
    ledger.close()


def test_report_lists_only_what_left_the_machine(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3")
    for _ in range(3):
        ledger(rec("127.0.0.1", port=11434))            # local server: stays
    ledger(rec("localhost", port=8080, purpose="discovery"))  # stays
    ledger(rec("192.168.1.20", port=11434, sent=5, received=7))
    ledger(rec("192.168.1.20", port=11434, sent=5, received=0, error="ConnectError"))
    ledger(rec("api.example.com", port=443, tier="remote", sent=100, received=400))
    ledger(rec("127.0.0.1", port=9999, tier="remote", sent=1, received=2))  # remote tier
    report = ledger.report()
    assert report.requests == 8
    assert report.left_machine == 4
    by_host = {(d.host, d.port): d for d in report.destinations}
    assert set(by_host) == {("192.168.1.20", 11434), ("api.example.com", 443),
                            ("127.0.0.1", 9999)}
    lan = by_host[("192.168.1.20", 11434)]
    assert (lan.requests, lan.failed, lan.bytes_sent, lan.bytes_received) == (2, 1, 10, 7)
    assert (lan.network, lan.tier) == ("private", "local")
    assert by_host[("api.example.com", 443)].network == "public"
    body = report.to_json()
    assert body["stayed_local"] == 4
    for dest in body["destinations"]:
        assert {"host", "port", "tier", "requests", "bytes_sent", "bytes_received"} <= set(dest)
    ledger.close()


def test_report_since(tmp_path: Path) -> None:
    ledger = EgressLedger(tmp_path / "l.sqlite3")
    now = time.time()
    ledger(rec("10.0.0.1", t=now - 7200))
    ledger(rec("10.0.0.2", t=now - 60))
    assert [d.host for d in ledger.report(since=now - 3600).destinations] == ["10.0.0.2"]
    assert ledger.report(since=now - 3600).requests == 1
    assert ledger.report().requests == 2
    ledger.close()


async def test_only_scheme_host_port_path_are_stored(tmp_path: Path) -> None:
    """Through the real HTTP layer: query string, headers and bodies never reach disk."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"echo": PROMPT})

    ledger = EgressLedger(tmp_path / "l.sqlite3")
    policy = EgressPolicy(recorders=[ledger])
    async with make_client(policy, tier="remote", transport=mock_transport(answer),
                           headers={"authorization": f"Bearer {SECRET}"}) as client:
        response = await client.post(f"http://127.0.0.1:9/v1/chat?key={SECRET}",
                                     json={"messages": [{"role": "user", "content": PROMPT}]})
        assert response.json()["echo"] == PROMPT
    [stored] = ledger.records()
    assert (stored.path, stored.tier, stored.status) == ("/v1/chat", "remote", 200)
    assert stored.bytes_sent == len(json.dumps(
        {"messages": [{"role": "user", "content": PROMPT}]}, separators=(",", ":")))
    assert stored.bytes_received == len(json.dumps({"echo": PROMPT}, separators=(",", ":")))
    ledger.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert SECRET.encode() not in raw and PROMPT.encode() not in raw


def test_unwritable_ledger_does_not_break_requests(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ledger = EgressLedger(blocker / "sub" / "l.sqlite3")  # parent is a file: cannot mkdir
    ledger(rec("127.0.0.1"))
    assert ledger.flush() == 0
    ledger.close()

