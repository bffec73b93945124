"""The index's alternative paths, kept here (not in ``localinfer.rag``) so
bench/bench_index.py can still compare them with the one path the index uses:

- keywords: FTS5 ranking alone (one OR query, ``bm25()`` for every matching row) and
  MaxScore over FTS5 (the default before the postings copy; Turtle and Flood, 1995);
- vectors: sqlite-vec's brute-force KNN over a ``vec0`` table of sign bits (the index
  kept such a table until issue 25; here it is built on demand, under its own name).

MaxScore, in short: a query's common words match most of a large index, and FTS5
computes ``bm25()`` for every matching row before it can sort. One term adds at most
``idf * (k1 + 1)`` to a row, so rank only the rows matching a rare term (``R AND (C)``
and ``R NOT (C)``); if the k-th score beats the common terms' bound, no other row can
enter the top k; if not, the next rarest term joins ``R`` (at worst: the plain query).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from localinfer.rag.bitscan import pack_bits

K1 = 1.2  # FTS5's bm25() default
RARE_ROWS = 2000  # rows the rare side may match before a term counts as common
VEC_TABLE = "bench_vec"


def ranked(db: sqlite3.Connection, match: str, k: int, collection: str | None
           ) -> list[tuple[int, float]]:
    """FTS5 alone: (rowid, bm25()) of the ``k`` best rows for an FTS5 query."""
    if collection:
        sql = ("SELECT f.rowid, bm25(chunk_fts) FROM chunk_fts f JOIN chunks c "
               "ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id "
               "WHERE chunk_fts MATCH ? AND d.collection = ? "
               "ORDER BY bm25(chunk_fts) LIMIT ?")
        args: tuple[Any, ...] = (match, collection, k)
    else:
        sql = ("SELECT rowid, bm25(chunk_fts) FROM chunk_fts WHERE chunk_fts MATCH ? "
               "ORDER BY rank LIMIT ?")
        args = (match, k)
    return [(int(r[0]), float(r[1])) for r in db.execute(sql, args)]


def plain(db: sqlite3.Connection, terms: Sequence[str], k: int,
          collection: str | None) -> list[int]:
    """FTS5 alone, ids only: one OR query of the terms."""
    return [i for i, _ in ranked(db, " OR ".join(terms), k, collection)]


class MaxScore:
    """MaxScore over FTS5; document frequencies cached (the bench never writes while
    it queries)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._df: dict[str, int] = {}
        self._rows = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def frequency(self, term: str) -> int:
        if term not in self._df:
            self._df[term] = int(self.db.execute(
                "SELECT COUNT(*) FROM chunk_fts WHERE chunk_fts MATCH ?", (term,)).fetchone()[0])
        return self._df[term]

    def bound(self, term: str) -> float:
        n, df = self._rows, self.frequency(term)
        return max(1e-6, math.log((n - df + 0.5) / (df + 0.5))) * (K1 + 1)

    def top(self, terms: Sequence[str], k: int, collection: str | None) -> list[int]:
        present = sorted((t for t in dict.fromkeys(terms) if self.frequency(t) > 0),
                         key=self.frequency)
        if not present:
            return []
        rare = 1
        while rare < len(present) and sum(map(self.frequency, present[:rare + 1])) <= RARE_ROWS:
            rare += 1
        while rare < len(present):
            r, c = " OR ".join(present[:rare]), " OR ".join(present[rare:])
            rows = sorted(ranked(self.db, f"({r}) AND ({c})", k, collection)
                          + ranked(self.db, f"({r}) NOT ({c})", k, collection),
                          key=lambda row: row[1])[:k]
            ceiling = sum(self.bound(t) for t in present[rare:])
            if len(rows) == k and -rows[-1][1] > ceiling:
                return [row[0] for row in rows]
            rare += 1
        return plain(self.db, present, k, collection)


def build_vec0(db: sqlite3.Connection, dim: int) -> None:
    """A ``vec0`` table of every chunk's sign bits, partitioned by collection, as the
    index kept it before issue 25 (sqlite-vec loaded into ``db`` here)."""
    import sqlite_vec

    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    db.execute(f"DROP TABLE IF EXISTS {VEC_TABLE}")
    db.execute(f"CREATE VIRTUAL TABLE {VEC_TABLE} USING vec0(collection TEXT PARTITION KEY, "
               f"embedding bit[{dim}])")
    db.execute("BEGIN")
    rows = db.execute("SELECT c.id, d.collection, c.embedding FROM chunks c "
                      "JOIN documents d ON d.id = c.doc_id").fetchall()
    for rowid, collection, blob in rows:
        bits = pack_bits(np.frombuffer(blob, dtype=np.float32).reshape(1, -1))[0]
        db.execute(f"INSERT INTO {VEC_TABLE}(rowid, collection, embedding) "
                   "VALUES (?, ?, vec_bit(?))", (rowid, collection, bits.tobytes()))
    db.execute("COMMIT")


def drop_vec0(db: sqlite3.Connection) -> None:
    db.execute(f"DROP TABLE IF EXISTS {VEC_TABLE}")


def knn_vec0(db: sqlite3.Connection, query: np.ndarray, k: int,
             collection: str | None) -> list[int]:
    """sqlite-vec's own brute-force KNN over the bits (its cost grows with ``k``)."""
    bits = pack_bits(query.reshape(1, -1))[0].tobytes()
    sql = (f"SELECT rowid FROM {VEC_TABLE} WHERE embedding MATCH vec_bit(?) AND k = ?"
           + (" AND collection = ?" if collection else ""))
    args: tuple[Any, ...] = (bits, k, collection) if collection else (bits, k)
    return [int(r[0]) for r in db.execute(sql, args)]
