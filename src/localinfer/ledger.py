"""The egress ledger: where every outbound request went, and the privacy report.

The ledger is an ``EgressPolicy`` recorder. Recording appends to an in-memory buffer
(a discovery sweep records several probes and must stay in the millisecond range);
a background thread writes the buffer to SQLite in one transaction per batch, and
``flush()``, ``close()`` and interpreter exit write what is left, so nothing recorded
is lost and no request waits for the disk.

Stored per request: time, method, scheme, host, port, path, bytes sent and received,
status, network class, tier, purpose, error name, trust class (device, lan, remote) and
the name of the gateway token the request was made for. Never a query string, header, body,
prompt or key: ``EgressRecord`` does not carry them.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import iso_time
from .errors import UsageError
from .http import EgressPolicy, EgressRecord

if TYPE_CHECKING:
    from .settings import Settings

LEDGER_FILE = "egress.sqlite3"
REPAIR_HINT = "run `localinfer privacy --repair` (it moves the file aside, never deletes it)"

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS egress (
    time REAL NOT NULL, method TEXT NOT NULL, scheme TEXT NOT NULL, host TEXT NOT NULL,
    port INTEGER NOT NULL, path TEXT NOT NULL, bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL, status INTEGER, network TEXT NOT NULL,
    tier TEXT NOT NULL, purpose TEXT NOT NULL, error TEXT, trust TEXT, client TEXT
);
CREATE INDEX IF NOT EXISTS egress_time ON egress(time);
"""
# Columns added after the first release: a ledger written before gains them on open.
_ADDED = {"trust": "TEXT", "client": "TEXT"}
_COLUMNS = ("time", "method", "scheme", "host", "port", "path", "bytes_sent",
            "bytes_received", "status", "network", "tier", "purpose", "error", *_ADDED)
_INSERT = f"INSERT INTO egress ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"

# What "left the machine": any destination that is not loopback, and anything the
# remote tier did (a remote provider configured on a loopback tunnel still counts).
_OFF_MACHINE = "(network != 'loopback' OR tier = 'remote')"


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    tier: str
    network: str
    purposes: list[str]
    requests: int
    failed: int
    bytes_sent: int
    bytes_received: int
    last: float

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "tier": self.tier,
                "requests": self.requests, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "scheme": self.scheme,
                "network": self.network, "purposes": self.purposes, "failed": self.failed,
                "last": iso_time(self.last)}


@dataclass(frozen=True)
class HostUse:
    """Inference requests to one host (any network, this machine included)."""

    scheme: str
    host: str
    port: int
    trust: str
    requests: int
    failed: int
    clients: list[str]
    last: float

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "scheme": self.scheme,
                "trust": self.trust, "requests": self.requests, "failed": self.failed,
                "clients": self.clients, "last": iso_time(self.last)}


@dataclass(frozen=True)
class PrivacyReport:
    since: float | None
    requests: int
    destinations: list[Destination]
    hosts: list[HostUse] = field(default_factory=list)

    @property
    def left_machine(self) -> int:
        return sum(d.requests for d in self.destinations)

    def to_json(self) -> dict[str, Any]:
        return {"since": iso_time(self.since) if self.since else None, "requests": self.requests,
                "stayed_local": self.requests - self.left_machine,
                "left_machine": self.left_machine,
                "destinations": [d.to_json() for d in self.destinations],
                "hosts": [h.to_json() for h in self.hosts]}


class LedgerDamaged(UsageError):
    """The ledger file exists but SQLite cannot use it."""

    code = "ledger_damaged"


class EgressLedger:
    """Buffered SQLite recorder. Call it with an ``EgressRecord``; read it with ``report``.

    A ledger that cannot be written is loud, never silent: ``problem()`` says why (the
    client logs it at start, so every command warns), a failed write logs each time,
    and with ``strict_ledger`` the egress policy refuses off-machine requests it could
    not record.
    """

    def __init__(self, path: Path, *, retention_seconds: float = 30 * 86400,
                 max_rows: int = 100_000, flush_interval: float = 1.0,
                 batch_size: int = 512) -> None:
        self.path = path
        self.retention_seconds = retention_seconds
        self.max_rows = max_rows
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._buffer: list[EgressRecord] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # One background writer per ledger, started by the first record: it sleeps until
        # there is something to write, then waits flush_interval (or less, if the batch
        # fills) so that a burst of records is written in one transaction.
        self._thread: threading.Thread | None = None
        self._pending = threading.Event()
        self._urgent = threading.Event()
        self._closed = False
        self._broken: str | None = None
        # A weak reference, so the exit hook neither keeps a dropped ledger alive nor
        # fails on one that is gone.
        ref = weakref.ref(self)
        self._exit_hook = lambda: _flush_ref(ref)
        atexit.register(self._exit_hook)

    @classmethod
    def for_home(cls, home: Path, **kwargs: Any) -> EgressLedger:
        return cls(home / LEDGER_FILE, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressLedger:
        return cls.for_home(settings.home,
                            retention_seconds=settings.ledger_retention_days * 86400,
                            max_rows=settings.ledger_max_rows)

    def policy(self, settings: Settings) -> EgressPolicy:
        """The egress policy that records into this ledger, with the settings' offline
        and strict-ledger rules. A damaged ledger is said once here, so every command
        that makes a client (or fetches an asset) warns."""
        problem = self.problem()
        if problem is not None:
            log.warning("%s", problem)
        return EgressPolicy(offline=settings.offline, recorders=[self],
                            unrecordable=self.problem if settings.strict_ledger else None)

    # -- health ----------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why records cannot be written here (None when they can): checked by opening
        the database, or remembered from the last failed write."""
        if self._broken is not None:
            return self._broken
        if not self.path.exists():
            return None
        try:
            conn = self._connect()
            try:
                conn.execute("SELECT count(*) FROM egress").fetchone()
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            self._broken = self._describe(exc)
        return self._broken

    def _describe(self, exc: Exception) -> str:
        return (f"the egress ledger {self.path} cannot be written ({exc}): outbound "
                f"requests are not being recorded; {REPAIR_HINT}")

    def repair(self) -> Path | None:
        """Move a damaged ledger (and its WAL files) aside and start a new one. Returns
        where the old file went, or None when it was fine (nothing is moved then)."""
        self._broken = None
        if self.problem() is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                part.rename(aside.with_name(aside.name + suffix))
        self._broken = None
        return aside

    # -- recording: cheap ------------------------------------------------------------

    def __call__(self, rec: EgressRecord) -> None:
        with self._lock:
            was_empty = not self._buffer
            self._buffer.append(rec)
            closed = self._closed
            if not closed:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._writer, daemon=True,
                                                    name=f"egress-ledger:{self.path.name}")
                    self._thread.start()
                if was_empty:
                    self._pending.set()
                if len(self._buffer) >= self.batch_size:
                    self._urgent.set()
        if closed:  # after close() there is no writer: write at once
            self.flush()

    def _writer(self) -> None:
        while True:
            self._pending.wait()
            self._urgent.wait(self.flush_interval)
            self._pending.clear()
            self._urgent.clear()
            self.flush()
            with self._lock:
                if self._closed:
                    return

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    # -- writing: batched ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")  # readers (privacy) never block writers
        conn.executescript(_SCHEMA)
        have = {row[1] for row in conn.execute("PRAGMA table_info(egress)")}
        for name, kind in _ADDED.items():
            if name not in have:
                try:
                    conn.execute(f"ALTER TABLE egress ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:
                    # Another connection (a reader, another process) added it first.
                    if "duplicate column" not in str(exc):
                        raise
        return conn

    def flush(self) -> int:
        """Write the buffer in one transaction and apply retention. Returns rows written."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        rows = [tuple(getattr(r, c) for c in _COLUMNS) for r in batch]
        with self._write_lock:
            try:
                conn = self._connect()
                try:
                    with conn:
                        conn.execute("BEGIN IMMEDIATE")
                        conn.executemany(_INSERT, rows)
                        self._prune(conn)
                finally:
                    conn.close()
            except (sqlite3.Error, OSError) as exc:
                # Losing a record must not break inference, but it is never silent.
                self._broken = self._describe(exc)
                log.warning("%d outbound request(s) not recorded: %s", len(rows), self._broken)
                return 0
        return len(rows)

    def _prune(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM egress WHERE time < ?",
                     (time.time() - self.retention_seconds,))
        conn.execute("DELETE FROM egress WHERE rowid <= (SELECT max(rowid) FROM egress) - ?",
                     (self.max_rows,))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._pending.set()
        self._urgent.set()
        if thread is not None:
            thread.join(timeout=30)
        self.flush()
        atexit.unregister(self._exit_hook)

    # -- reading ---------------------------------------------------------------------

    def report(self, since: float | None = None) -> PrivacyReport:
        """Every off-machine destination since ``since`` (epoch seconds; None: all kept)."""
        self.flush()
        if not self.path.exists():
            return PrivacyReport(since=since, requests=0, destinations=[])
        start = since if since is not None else 0.0
        try:
            return self._report(start, since)
        except sqlite3.DatabaseError as exc:
            raise LedgerDamaged(f"{self.path} is not a readable egress ledger ({exc}); "
                                f"{REPAIR_HINT}") from None

    def _report(self, start: float, since: float | None) -> PrivacyReport:
        conn = self._connect()
        try:
            total = conn.execute("SELECT count(*) FROM egress WHERE time >= ?",
                                 (start,)).fetchone()[0]
            rows = conn.execute(
                "SELECT scheme, host, port, tier, network, group_concat(DISTINCT purpose), "
                "count(*), sum(error IS NOT NULL), sum(bytes_sent), sum(bytes_received), "
                f"max(time) FROM egress WHERE time >= ? AND {_OFF_MACHINE} "
                "GROUP BY scheme, host, port, tier, network ORDER BY count(*) DESC, host",
                (start,)).fetchall()
            used = conn.execute(
                "SELECT scheme, host, port, coalesce(trust, '?'), count(*), "
                "sum(error IS NOT NULL OR status >= 500), group_concat(DISTINCT client), "
                "max(time) FROM egress WHERE time >= ? AND purpose = 'backend' "
                "AND tier = 'local' GROUP BY scheme, host, port, trust "
                "ORDER BY count(*) DESC, host", (start,)).fetchall()
        finally:
            conn.close()
        hosts = [HostUse(scheme=r[0], host=r[1], port=r[2], trust=r[3], requests=r[4],
                         failed=r[5], clients=sorted(str(r[6]).split(",")) if r[6] else [],
                         last=r[7]) for r in used]
        destinations = [
            Destination(scheme=r[0], host=r[1], port=r[2], tier=r[3], network=r[4],
                        purposes=sorted(str(r[5]).split(",")), requests=r[6], failed=r[7],
                        bytes_sent=r[8], bytes_received=r[9], last=r[10])
            for r in rows
        ]
        return PrivacyReport(since=since, requests=total, destinations=destinations,
                             hosts=hosts)

    def records(self, since: float | None = None) -> list[EgressRecord]:
        """Raw records, oldest first (tests and debugging)."""
        self.flush()
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM egress WHERE time >= ? "
                                "ORDER BY time, rowid", (since or 0.0,)).fetchall()
        finally:
            conn.close()
        return [EgressRecord(**dict(zip(_COLUMNS, r, strict=True))) for r in rows]


def _flush_ref(ref: weakref.ReferenceType[EgressLedger]) -> None:
    ledger = ref()
    if ledger is not None:
        ledger.flush()
