"""The index on disk: one SQLite file, with each concern kept once.

- text, places and the float32 vector of each chunk: the ``chunks`` table (the source of
  truth; the exact pass of vector search reads its vectors);
- keywords: the FTS5 table ``chunk_fts``, ranked through a copy of its postings
  (keywords.py, postings.py);
- the vectors as search scans them (sign bits, int8): a cache built from ``chunks`` and
  kept in the mapped file beside the index (bitscan.py, vectorfile.py).

Every change to a document is one ``BEGIN IMMEDIATE`` transaction (its old chunks out,
its new chunks and its content hash in), so a process killed mid-ingest leaves the
file consistent and a re-run picks up where it stopped. SQLite's write lock, waited on
through ``busy_timeout``, serialises concurrent writers; WAL lets readers carry on.

Any tool with sqlite-vec loaded can still search the file with plain SQL, over the float32
column: ``SELECT id FROM chunks ORDER BY vec_distance_cosine(embedding, ?) LIMIT 10``.
Files written before issue 25 also kept the sign bits in a sqlite-vec ``vec0`` table
(``chunk_vec``) that search never read; the first open drops it (``_drop_vec0``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

import numpy as np

from ..backends.onnx.embedder import Vectors
from ..errors import LocalInferError
from . import postings, vectorfile
from .bitscan import BIT_CANDIDATES, VectorCache
from .chunking import Chunk
from .keywords import KeywordSearch

SCHEMA_VERSION = "1"
BUSY_TIMEOUT_S = 120.0
log = logging.getLogger(__name__)


class IndexUnusable(LocalInferError):
    """The index file cannot be used as asked."""

    exit_code = 2
    http_status = 409
    code = "index_error"


def sqlite_module() -> ModuleType:
    """A DB-API sqlite module that can load extensions where one is installed: the
    standard one where its build allows it, else ``sqlean`` (the same API with extension
    loading compiled in). Only dropping an older file's ``vec0`` table needs sqlite-vec
    loaded; without either, the standard module serves and that table stays."""
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        return importlib.import_module("sqlean")
    except ImportError:
        return sqlite3


@dataclass(frozen=True)
class DocumentRow:
    id: int
    collection: str
    path: str
    kind: str
    sha256: str
    size: int
    mtime: float
    chunks: int
    indexed_at: float


@dataclass(frozen=True)
class ChunkRow:
    id: int
    collection: str
    path: str
    heading: str
    text: str
    start_line: int | None
    end_line: int | None
    page_start: int | None
    page_end: int | None


_DOC_COLUMNS = "id, collection, path, kind, sha256, size, mtime, chunks, indexed_at"
_CHUNK_COLUMNS = ("c.id, d.collection, d.path, c.heading, c.text, c.start_line, c.end_line, "
                  "c.page_start, c.page_end")


class Store:
    def __init__(self, path: Path, *, embedder_id: str, dim: int,
                 timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout
        self.dim = dim
        self.embedder_id = embedder_id
        path.parent.mkdir(parents=True, exist_ok=True)
        module = sqlite_module()
        self.errors: type[Exception] = module.Error
        try:
            conn = module.connect(str(path), timeout=timeout, isolation_level=None,
                                  check_same_thread=False)
        except module.Error as exc:
            raise IndexUnusable(f"cannot open index {path}: {exc}") from exc
        self.db = cast(sqlite3.Connection, conn)
        self._writes = 0
        self._cache: VectorCache | None = None
        # The (data_version, own writes) each in-memory copy last saw, by copy.
        self._seen: dict[str, tuple[int, int]] = {}
        self._cache_generation = -1
        self._vector_check: vectorfile.BulkCheck | None = None
        self.vectors_path = vectorfile.path_for(path)
        # Where the last vector load came from: "file", or why the file was not used.
        self.vector_source = ""
        self.keywords = KeywordSearch(self.db, module, path, generation=self.generation,
                                      changed=lambda: self._changed("keywords"))
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self.db.execute("PRAGMA foreign_keys = ON")
        self._init_schema()

    def _init_schema(self) -> None:
        try:
            self._use_wal()
            self.db.execute("PRAGMA synchronous = NORMAL")
            with self.write():
                for statement in _SCHEMA:
                    self.db.execute(statement)
                meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    self.db.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [
                        ("schema", SCHEMA_VERSION), ("embedder", self.embedder_id),
                        ("dim", str(self.dim)),
                    ])
                    meta = {"schema": SCHEMA_VERSION, "embedder": self.embedder_id}
                # Older files of this schema get the counter and its triggers here.
                self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES "
                                "('generation', 0)")
                for statement in _generation_triggers():
                    self.db.execute(statement)
                self._drop_vec0()
        except self.errors as exc:
            raise IndexUnusable(f"cannot open index {self.path}: {exc}") from exc
        if meta.get("schema") != SCHEMA_VERSION:
            raise IndexUnusable(f"index {self.path} has schema {meta.get('schema')}; this "
                              f"localinfer reads schema {SCHEMA_VERSION}: delete it and re-add")
        if meta.get("embedder") != self.embedder_id:
            raise IndexUnusable(
                f"index {self.path} was built with embedder {meta.get('embedder')!r}, not "
                f"{self.embedder_id!r}: use the same embedder or start a new index file")

    def _use_wal(self) -> None:
        """WAL: readers never wait for the writer; set once, it is stored in the file.
        Switching a new file to it takes a lock SQLite's busy handler does not wait for,
        so two processes creating one index at once (two ``index add``) would see
        "database is locked": the switch is retried within the busy timeout instead."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self.db.execute("PRAGMA journal_mode = WAL")
                return
            except self.errors as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _drop_vec0(self) -> None:
        """Drop the ``vec0`` copy of the sign bits that files from before issue 25 kept
        (in the open's write transaction). Only sqlite-vec can drop its own table; where
        it cannot be loaded the table stays, unused, and the index works all the same (no
        statement here touches it). It held nothing ``chunks`` does not."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunk_vec'"
                           ).fetchone() is None:
            return
        try:
            import sqlite_vec

            self.db.enable_load_extension(True)
            try:
                sqlite_vec.load(self.db)
            finally:
                self.db.enable_load_extension(False)
        except (ImportError, AttributeError, self.errors) as exc:
            log.info("the unused table chunk_vec stays in %s: sqlite-vec cannot be loaded "
                     "(%s)", self.path, exc)
            return
        self.db.execute("DROP TABLE chunk_vec")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the lock is taken at BEGIN so two writers queue there
        instead of failing half-way through."""
        self.db.execute("BEGIN IMMEDIATE")
        self._writes += 1  # the vector cache reloads after our own writes too
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.keywords.close()
        self.db.close()

    # documents -------------------------------------------------------------------

    def document(self, collection: str, path: str) -> DocumentRow | None:
        row = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents "
                              "WHERE collection = ? AND path = ?", (collection, path)).fetchone()
        return DocumentRow(*row) if row else None

    def documents(self, collection: str | None = None) -> list[DocumentRow]:
        where, args = ("WHERE collection = ?", (collection,)) if collection else ("", ())
        rows = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents {where} "
                               "ORDER BY collection, path", args).fetchall()
        return [DocumentRow(*r) for r in rows]

    def replace_document(self, *, collection: str, path: str, kind: str, sha256: str,
                         size: int, mtime: float, chunks: Sequence[Chunk],
                         vectors: Vectors) -> bool:
        """Store a document's chunks in place of any older version. False when another
        writer stored this exact content first (nothing to do)."""
        floats = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.write() as db:
            old = self.document(collection, path)
            if old is not None and old.sha256 == sha256:
                return False
            if old is not None:
                self._delete_chunks(old.id)
                db.execute("UPDATE documents SET kind = ?, sha256 = ?, size = ?, mtime = ?, "
                           "chunks = ?, indexed_at = ? WHERE id = ?",
                           (kind, sha256, size, mtime, len(chunks), time.time(), old.id))
                doc_id = old.id
            else:
                cur = db.execute(
                    "INSERT INTO documents(collection, path, kind, sha256, size, mtime, chunks, "
                    "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (collection, path, kind, sha256, size, mtime, len(chunks), time.time()))
                doc_id = int(cur.lastrowid or 0)
            for ordinal, chunk in enumerate(chunks):
                cur = db.execute(
                    "INSERT INTO chunks(doc_id, ord, heading, text, start_line, end_line, "
                    "page_start, page_end, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_id, ordinal, chunk.heading, chunk.text, chunk.start_line,
                     chunk.end_line, chunk.page_start, chunk.page_end,
                     floats[ordinal].tobytes()))
                chunk_id = cur.lastrowid
                db.execute("INSERT INTO chunk_fts(rowid, text, heading) VALUES (?, ?, ?)",
                           (chunk_id, chunk.text, chunk.heading))
        return True

    def remove_document(self, doc_id: int) -> None:
        with self.write() as db:
            self._delete_chunks(doc_id)
            db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def _delete_chunks(self, doc_id: int) -> None:
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?",
                                             (doc_id,))]
        self.db.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))

    # roots: what was added, so `sync` can find new and deleted files -----------------

    def add_root(self, collection: str, path: str) -> None:
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO roots(collection, path, added_at) VALUES (?, ?, ?)",
                       (collection, path, time.time()))

    def roots(self, collection: str | None = None) -> list[tuple[str, str]]:
        where, args = ("WHERE collection = ?", (collection,)) if collection else ("", ())
        return [(r[0], r[1]) for r in self.db.execute(
            f"SELECT collection, path FROM roots {where} ORDER BY collection, path", args)]

    def remove_root(self, collection: str, path: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM roots WHERE collection = ? AND path = ?", (collection, path))

    # reading ---------------------------------------------------------------------

    def collections(self) -> list[str]:
        rows = self.db.execute("SELECT collection FROM documents UNION "
                               "SELECT collection FROM roots ORDER BY 1")
        return [r[0] for r in rows]

    def counts(self) -> dict[str, tuple[int, int]]:
        """collection -> (documents, chunks)."""
        rows = self.db.execute("SELECT collection, COUNT(*), COALESCE(SUM(chunks), 0) "
                               "FROM documents GROUP BY collection ORDER BY collection")
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def vector_candidates(self, query: Vectors, k: int, collection: str | None, *,
                          bit_candidates: int = BIT_CANDIDATES) -> list[int]:
        """Ids of about the ``k`` chunks nearest to ``query`` (bits, then int8)."""
        return self._vectors().nearest(query, k, collection, bit_candidates=bit_candidates)

    def _changed(self, copy: str = "vectors") -> bool:
        """True once per in-memory ``copy`` after each write, ours or another
        connection's (SQLite's data_version tells). Each copy keeps its own mark: one
        noticing a write must not hide it from the other."""
        version = (int(self.db.execute("PRAGMA data_version").fetchone()[0]), self._writes)
        if version == self._seen.get(copy):
            return False
        self._seen[copy] = version
        return True

    def generation(self) -> tuple[int, int]:
        """(generation, chunk count): what a vector file must match."""
        row = self.db.execute("SELECT (SELECT CAST(value AS INTEGER) FROM meta WHERE "
                              "key = 'generation'), (SELECT COUNT(*) FROM chunks)").fetchone()
        return int(row[0] or 0), int(row[1])

    def _vectors(self) -> VectorCache:
        """Every chunk's vector as the search scans it: mapped from the vector file when
        it matches the index, else rebuilt from SQLite (and the file rewritten)."""
        check = self._vector_check
        if check is not None and check.failed:  # found by the background check
            self._cache = self._vector_check = None
            self._rebuild()
            self.vector_source = "checksum mismatch (corrupt; found after opening)"
            assert self._cache is not None
            return self._cache
        if self._cache is not None and not self._changed():
            return self._cache
        generation, count = self.generation()
        if self._cache is not None and generation == self._cache_generation:
            return self._cache  # a write that did not touch chunks (roots, meta)
        loaded = vectorfile.read(self.vectors_path, dim=self.dim, generation=generation,
                                 count=count)
        if loaded.cache is not None:
            self._cache, self._cache_generation = loaded.cache, generation
            self._vector_check = loaded.check
            self.vector_source = "file"
            return loaded.cache
        self._cache = self._vector_check = None  # drop the old mapping first
        self._rebuild()
        self.vector_source = loaded.why
        assert self._cache is not None
        return self._cache

    def _rebuild(self) -> None:
        # One read transaction: the generation and the rows come from the same snapshot.
        self.db.execute("BEGIN")
        try:
            generation, _ = self.generation()
            rows = self.db.execute("SELECT c.id, d.collection, c.embedding FROM chunks c "
                                   "JOIN documents d ON d.id = c.doc_id ORDER BY c.id")
            cache = VectorCache.from_rows(rows, self.dim)
        finally:
            self.db.execute("COMMIT")
        self._cache, self._cache_generation = cache, generation
        self._changed()  # our own read does not count as a change
        try:
            vectorfile.write(self.vectors_path, cache, dim=self.dim, generation=generation)
        except OSError as exc:  # read-only folder, full disk: search works, opens are slower
            log.warning("could not write the vector file %s: %s", self.vectors_path, exc)

    def sync_vectors(self) -> str:
        """Bring the vector and keyword files up to date (after an ingest): "file" if
        the vector file already was, else why it was rebuilt."""
        self._vectors()
        self.sync_keywords()
        return self.vector_source

    def embeddings(self, ids: Sequence[int]) -> tuple[list[int], Vectors]:
        if not ids:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, embedding FROM chunks WHERE id IN ({marks})",
                               list(ids)).fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return [int(r[0]) for r in rows], matrix.reshape(len(rows), self.dim)

    def keyword_candidates(self, terms: Sequence[str], k: int,
                           collection: str | None) -> list[int]:
        """Chunk ids best matching any of ``terms`` (quoted FTS5 phrases), by BM25."""
        return self.keywords.top(terms, k, collection)

    @property
    def keyword_source(self) -> str:
        """Where the keyword copy in use came from: "file", or why it was rebuilt."""
        return self.keywords.source

    def sync_keywords(self) -> str:
        return self.keywords.sync()

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d "
                               f"ON d.id = c.doc_id WHERE c.id IN ({marks})", list(ids))
        return {int(r[0]): ChunkRow(*r) for r in rows}

    def check(self) -> str:
        return str(self.db.execute("PRAGMA quick_check").fetchone()[0])


def _generation_triggers() -> list[str]:
    """Every change to chunks bumps meta.generation, whoever writes (an older localinfer,
    the sqlite3 shell): a vector file from before the change is then never used."""
    bump = "BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END"
    return [f"CREATE TRIGGER IF NOT EXISTS chunks_generation_{name} AFTER {event} ON chunks "
            f"{bump}" for name, event in (("insert", "INSERT"), ("delete", "DELETE"),
                                          ("update", "UPDATE"))]


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS documents(
        id INTEGER PRIMARY KEY,
        collection TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        chunks INTEGER NOT NULL,
        indexed_at REAL NOT NULL,
        UNIQUE(collection, path))""",
    """CREATE TABLE IF NOT EXISTS chunks(
        id INTEGER PRIMARY KEY,
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        heading TEXT NOT NULL,
        text TEXT NOT NULL,
        start_line INTEGER,
        end_line INTEGER,
        page_start INTEGER,
        page_end INTEGER,
        embedding BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id)",
    """CREATE TABLE IF NOT EXISTS roots(
        collection TEXT NOT NULL,
        path TEXT NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY(collection, path))""",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5("
    f"text, heading, tokenize = '{postings.TOKENIZE}')",
]
