"""BM25 top-k over FTS5 without ranking every row that matches a common word.

An OR query of a question's words matches most of a large index through its common
words ("returned", "object"), and FTS5 computes ``bm25()`` for every matching row before
it can sort: that was 28 ms of a 100k-chunk hybrid query. BM25 is a sum over the query's
terms, and one term adds at most ``idf * (k1 + 1)`` to any row, so MaxScore (Turtle and
Flood, 1995) applies: split the terms into rare ones ``R`` and common ones ``C``; a row
that matches no rare term scores at most ``sum(bound(C))``. Rank only the rows that
match a rare term, with their full score (``R AND (C)`` and ``R NOT (C)``: FTS5 reaches
those rows by seeking the rare doclists, and every phrase appears once, so ``bm25()``
is the same number the plain OR query gives). If the k-th score beats the common terms'
bound, no row outside can enter the top k and the answer is exact; if not, the next
rarest term moves to ``R`` and the query runs again (at worst: the plain OR query).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

# FTS5's bm25() defaults.
K1 = 1.2
# Rows the rare side may match before a term counts as common: rows past this are what
# made the plain query slow.
RARE_ROWS = 2000


class KeywordRanker:
    """One connection's keyword search; document frequencies are cached until the
    caller says the index changed (``invalidate``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._df: dict[str, int] = {}
        self._rows: int | None = None

    def invalidate(self) -> None:
        self._df.clear()
        self._rows = None

    def frequency(self, term: str) -> int:
        """Rows containing ``term`` (a quoted FTS5 phrase): counting is cheap, ranking is
        not."""
        if term not in self._df:
            self._df[term] = int(self.db.execute(
                "SELECT COUNT(*) FROM chunk_fts WHERE chunk_fts MATCH ?", (term,)).fetchone()[0])
        return self._df[term]

    def total(self) -> int:
        if self._rows is None:
            self._rows = int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        return self._rows

    def bound(self, term: str) -> float:
        """The most one term adds to a row's BM25 (FTS5's idf, floored as FTS5 does)."""
        n, df = self.total(), self.frequency(term)
        return max(1e-6, math.log((n - df + 0.5) / (df + 0.5))) * (K1 + 1)

    def top(self, terms: Sequence[str], k: int, collection: str | None) -> list[int]:
        """Ids of the ``k`` rows best matching any of ``terms``, by BM25, best first."""
        present = sorted((t for t in dict.fromkeys(terms) if self.frequency(t) > 0),
                         key=self.frequency)
        if not present:
            return []
        rare = 1
        while rare < len(present) and sum(map(self.frequency, present[:rare + 1])) <= RARE_ROWS:
            rare += 1
        while rare < len(present):
            rows = self._split(present[:rare], present[rare:], k, collection)
            ceiling = sum(self.bound(t) for t in present[rare:])
            if len(rows) == k and -rows[-1][1] > ceiling:
                return [r[0] for r in rows]
            rare += 1
        return [r[0] for r in self._ranked(_any(present), k, collection)]

    def _split(self, rare: Sequence[str], common: Sequence[str], k: int,
               collection: str | None) -> list[tuple[int, float]]:
        r, c = _any(rare), _any(common)
        both = self._ranked(f"({r}) AND ({c})", k, collection)
        alone = self._ranked(f"({r}) NOT ({c})", k, collection)
        return sorted(both + alone, key=lambda row: row[1])[:k]  # bm25(): lower is better

    def _ranked(self, match: str, k: int, collection: str | None) -> list[tuple[int, float]]:
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
        return [(int(r[0]), float(r[1])) for r in self.db.execute(sql, args)]


def _any(terms: Sequence[str]) -> str:
    return " OR ".join(terms)
