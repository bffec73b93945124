"""Keyword search: BM25 over the postings copy (postings.py), the one ranking path.

The copy is mapped from ``index.db.keywords`` while that file matches the index; when it
does not (a write it has not seen, a damaged or deleted file) the copy is rebuilt from
FTS5 on the spot and the file rewritten, as the vector cache is (about 1 s at 100k
chunks, once per change the writer did not sync itself). Measured against the
alternatives (MaxScore over FTS5, FTS5's plain OR query: bench/bench_index.py keeps
them), this is 6-11x faster at 100k chunks with the same scores.

FTS5 ranks alone (its own ``bm25()``, one query) only when the copy cannot be built for
the index as it is: a full-text table this code cannot copy (a row with no chunk, counts
that disagree). That is remembered until the index changes, so a failing build is not
retried on every query.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import postings
from .postings import Postings, PostingsUnavailable, Tokenizer

log = logging.getLogger(__name__)

# (generation, chunk count, FTS5 stamp): what a keyword file must match.
Key = tuple[int, int, int]


class KeywordSearch:
    """One connection's keyword search. ``generation`` gives the index's (generation,
    chunk count); ``changed`` says whether anything was written since it last asked."""

    def __init__(self, db: sqlite3.Connection, module: Any, index_path: Path, *,
                 generation: Callable[[], tuple[int, int]],
                 changed: Callable[[], bool]) -> None:
        self.db = db
        self.path = postings.path_for(index_path)
        self._module = module
        self._generation = generation
        self._changed = changed
        self._postings: Postings | None = None
        self._key: Key | None = None  # what ``_postings`` was built or read for
        self._tokenizer: Tokenizer | None = None
        # Where the copy in use came from: "file", or why the file was not used (then
        # rebuilt), or why FTS5 ranks alone.
        self.source = ""

    def close(self) -> None:
        if self._tokenizer is not None:
            self._tokenizer.close()

    def _key_now(self) -> Key:
        generation, count = self._generation()
        return generation, count, postings.fts_stamp(self.db)

    def current(self) -> Postings | None:
        """The copy matching the index (None: it cannot be built, FTS5 ranks)."""
        if self._key is not None and not self._changed():
            return self._postings
        key = self._key_now()
        if key == self._key:
            return self._postings  # a write that touched neither chunks nor FTS5
        loaded = postings.read(self.path, generation=key[0], count=key[1], stamp=key[2])
        if loaded.postings is not None:
            self._postings, self._key, self.source = loaded.postings, key, "file"
            return loaded.postings
        self._rebuild(loaded.why)
        return self._postings

    def _rebuild(self, why: str) -> None:
        self.db.execute("BEGIN")  # the key and the postings from one snapshot
        try:
            key = self._key_now()
            built: Postings | None = postings.build(self.db)
            self.source = why
        except PostingsUnavailable as exc:
            log.warning("keyword search falls back to FTS5's own ranking: %s", exc)
            built, self.source = None, f"unavailable: {exc}"
        finally:
            self.db.execute("COMMIT")
        self._postings, self._key = built, key
        self._changed()  # our own read is no change
        if built is not None:
            self._write(built, key)

    def _write(self, built: Postings, key: Key) -> None:
        try:
            postings.write(self.path, built, generation=key[0], stamp=key[2])
        except OSError as exc:  # read-only folder, full disk: rebuilt on the next open
            log.warning("could not write the keyword file %s: %s", self.path, exc)

    def sync(self) -> str:
        """Bring the keyword file up to date (after an ingest): "file" if it already
        was, else why it was rebuilt (or why it could not be)."""
        current = self.current()
        if current is not None and self._key is not None and not self.path.exists():
            self._write(current, self._key)  # deleted by hand, or an earlier write failed
        return self.source

    def top(self, terms: Sequence[str], k: int, collection: str | None) -> list[int]:
        """Chunk ids of the ``k`` chunks best matching any of ``terms`` (quoted FTS5
        phrases) by BM25, best first."""
        index = self.current()
        if index is not None:
            if self._tokenizer is None:
                self._tokenizer = Tokenizer(self._module)
            tokens = self._tokenizer.tokens([t.strip('"') for t in terms])
            try:
                phrases = [t[0] if len(t) == 1 else index.phrase(self._phrase(term))
                           for term, t in zip(terms, tokens, strict=True)]
            except PostingsUnavailable as exc:
                log.warning("keyword search falls back to FTS5's own ranking: %s", exc)
                self.source = f"unavailable: {exc}"
            else:
                return index.top(phrases, k, collection)
        return self._fts5(terms, k, collection)

    def _phrase(self, term: str) -> list[tuple[int, float]]:
        """A multi-token phrase's rows and bm25() by FTS5 (its own rows only: cheap)."""
        return [(int(r[0]), float(r[1])) for r in self.db.execute(
            "SELECT rowid, bm25(chunk_fts) FROM chunk_fts WHERE chunk_fts MATCH ?", (term,))]

    def _fts5(self, terms: Sequence[str], k: int, collection: str | None) -> list[int]:
        """FTS5's own ranking: every matching row gets a bm25() (slow on common words)."""
        match = " OR ".join(terms)
        if collection:
            sql = ("SELECT f.rowid FROM chunk_fts f JOIN chunks c ON c.id = f.rowid "
                   "JOIN documents d ON d.id = c.doc_id WHERE chunk_fts MATCH ? AND "
                   "d.collection = ? ORDER BY bm25(chunk_fts), f.rowid LIMIT ?")
            args: tuple[Any, ...] = (match, collection, k)
        else:
            sql = ("SELECT rowid FROM chunk_fts WHERE chunk_fts MATCH ? "
                   "ORDER BY rank, rowid LIMIT ?")
            args = (match, k)
        return [int(r[0]) for r in self.db.execute(sql, args)]
