"""BM25 of our own over FTS5's postings, kept in a file beside the index.

FTS5 stays the source of truth (every write goes to it), but it computes ``bm25()`` row
by row (~4 µs a row here) and counts each query phrase's rows once per statement, which
left a 100k-chunk keyword query at tens of milliseconds even with MaxScore. This module
copies FTS5's inverted index into numpy arrays (one term's matching rows with their term
frequencies, each row's token count) and scores a query with vector operations: the
same formula as FTS5's ``bm25()`` (k1 = 1.2, b = 0.75, idf floored at 1e-6, term
frequencies summed over the columns, one addend per query phrase in query order), so the
scores are FTS5's own numbers and the top k is the same up to ties.

The arrays come from ``fts5vocab`` (the ``row`` table gives each term's instance count,
the ``instance`` table every instance in term order), built after an ingest and written
to ``index.db.keywords`` (temp file, fsync, rename). Fail closed: the header records the
index's generation and chunk count (as the vector file does) and a CRC-32 of two of
FTS5's own records (structure and totals, read as opaque bytes, never parsed), which
change on every write to the full-text table, even one that bypasses ``chunks``; a file
that does not match, or whose CRC-32 is wrong, is not used, and the caller rebuilds the
copy from FTS5 (keywords.py). A query word the tokenizer splits into several tokens
(``snake_case``: a fifth of the benchmark's queries) is a phrase, which needs positions
these arrays do not keep: FTS5 finds its rows, and their term frequency is read back
from that one phrase's ``bm25()`` (the formula solved for the frequency, rounded: exact,
as the rows' lengths are the same numbers here).
"""

from __future__ import annotations

import json
import math
import sqlite3
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .vectorfile import map_readonly, write_atomic

MAGIC = b"LIKWPS01"
# magic, generation, rows, FTS5's row count, FTS5 stamp, terms, postings, terms bytes,
# names bytes, crc32
_HEADER = struct.Struct("<8sQQQIQQQII")
HEADER_BYTES = 96
_ALIGN = 64
TOKENIZE = "porter unicode61 remove_diacritics 2"  # store.py's chunk_fts uses this one
K1 = 1.2
B = 0.75
# Instances fetched per fts5vocab statement while building (bounds the text SQLite hands
# back: one decimal id per instance).
BUILD_BATCH = 1 << 20
_TOKEN_CACHE = 50_000


Phrase = tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]


class PostingsUnavailable(Exception):
    """The full-text table cannot be copied (a layout this module does not know)."""


@dataclass(frozen=True)
class Loaded:
    postings: Postings | None
    why: str  # "ok", or why the file was not used


def path_for(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".keywords")


def fts_stamp(db: sqlite3.Connection) -> int:
    """CRC-32 of FTS5's totals record (rows, tokens per column) and its structure record
    (segments and a write cookie), as bytes: both change on every write to ``chunk_fts``,
    which no trigger can see (a virtual table has none)."""
    crc = 0
    for (block,) in db.execute("SELECT block FROM chunk_fts_data WHERE id IN (1, 10) "
                               "ORDER BY id"):
        crc = zlib.crc32(bytes(block), crc)
    return crc


def _pad(n: int) -> int:
    return -n % _ALIGN


def _denominators(lengths: npt.NDArray[np.int64], rows: int, tokens: int
                  ) -> npt.NDArray[np.float64]:
    """``k1 * (1 - b + b * D / avgdl)`` per row, evaluated in FTS5's order."""
    avgdl = tokens / rows if rows else 1.0
    return np.asarray(K1 * ((1 - B) + (B * lengths.astype(np.float64)) / avgdl))


@dataclass
class Postings:
    terms: dict[str, int]
    offsets: npt.NDArray[np.int64]  # term i's postings: [offsets[i], offsets[i + 1])
    rows: npt.NDArray[np.int32]  # row positions, ascending within a term
    freqs: npt.NDArray[np.uint16]  # term frequency in that row, over every column
    ids: npt.NDArray[np.int64]  # chunk id of each row position, ascending
    collections: npt.NDArray[np.int32]  # index into ``names``
    denominators: npt.NDArray[np.float64]
    names: tuple[str, ...]
    total_rows: int  # FTS5's row count, the N of the idf
    backing: object = field(default=None, compare=False, repr=False)

    def _idf(self, df: int) -> float:
        n = self.total_rows
        return max(1e-6, math.log((n - df + 0.5) / (df + 0.5)))

    def phrase(self, matches: Sequence[tuple[int, float]]) -> Phrase:
        """A phrase's postings from FTS5's answer to it alone: (rowid, bm25()) pairs."""
        if not matches:
            return np.empty(0, np.int32), np.empty(0, np.float64)
        rowids = np.array([m[0] for m in matches], dtype=np.int64)
        score = -np.array([m[1] for m in matches], dtype=np.float64)
        rows = np.searchsorted(self.ids, rowids)
        if int(rows.max()) >= len(self.ids) or not bool(np.array_equal(self.ids[rows], rowids)):
            raise PostingsUnavailable("a phrase matched a row the copy does not hold")
        idf = self._idf(len(rows))
        # score = idf * tf (k1 + 1) / (tf + d)  =>  tf = score d / (idf (k1 + 1) - score)
        tf = np.rint(score * self.denominators[rows] / (idf * (K1 + 1.0) - score))
        return rows.astype(np.int32), np.maximum(tf, 1.0)

    def top(self, phrases: Sequence[str | Phrase], k: int, collection: str | None
            ) -> list[int]:
        """Chunk ids of the ``k`` rows best matching any phrase, by FTS5's BM25, best
        first (ties by id). ``phrases``, in query order: a token, or a multi-token
        phrase's (rows, term frequencies) from ``phrase``."""
        if collection is not None and collection not in self.names:
            return []
        scores = np.zeros(len(self.ids), dtype=np.float64)
        touched = False
        for item in phrases:
            if isinstance(item, str):
                term = self.terms.get(item)
                if term is None:
                    continue  # FTS5 adds 0.0 for a phrase no row contains
                lo, hi = int(self.offsets[term]), int(self.offsets[term + 1])
                rows, tf = self.rows[lo:hi], self.freqs[lo:hi].astype(np.float64)
            else:
                rows, tf = item
                if not len(rows):
                    continue
            idf = self._idf(len(rows))
            scores[rows] += idf * ((tf * (K1 + 1.0)) / (tf + self.denominators[rows]))
            touched = True
        if not touched:
            return []
        found = np.flatnonzero(scores > 0)
        if collection is not None:
            found = found[self.collections[found] == self.names.index(collection)]
        if len(found) > k:
            # Rows tied at the k-th score: the lowest ids, as FTS5's sorter keeps them
            # (row positions ascend with ids).
            kth = np.partition(-scores[found], k - 1)[k - 1]
            tied = found[-scores[found] == kth]
            found = found[-scores[found] < kth]
            found = np.concatenate([found, tied[:k - len(found)]])
        order = np.lexsort((self.ids[found], -scores[found]))
        return [int(i) for i in self.ids[found[order]]]


def build(db: sqlite3.Connection) -> Postings:
    """Copy FTS5's postings (call inside a read transaction, with the generation read in
    the same one). Raises PostingsUnavailable when the copy does not add up."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunk_fts_rows "
               "USING fts5vocab(main, chunk_fts, row)")
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunk_fts_instances "
               "USING fts5vocab(main, chunk_fts, instance)")
    vocab = db.execute("SELECT term, cnt FROM temp.chunk_fts_rows").fetchall()
    terms = [str(t) for t, _ in vocab]
    counts = np.array([int(c) for _, c in vocab], dtype=np.int64)
    docs = np.empty(int(counts.sum()), dtype=np.int64)
    at, first = 0, 0
    for last in _batches(counts):
        text = db.execute("SELECT group_concat(doc, ',') FROM temp.chunk_fts_instances "
                          "WHERE term >= ? AND term <= ?",
                          (terms[first], terms[last])).fetchone()[0] or ""
        got = np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, np.int64)
        want = int(counts[first:last + 1].sum())
        if len(got) != want:
            raise PostingsUnavailable(f"fts5vocab returned {len(got)} instances, not {want}")
        docs[at:at + want] = got
        at, first = at + want, last + 1
    chunk_rows = db.execute("SELECT c.id, d.collection FROM chunks c "
                            "JOIN documents d ON d.id = c.doc_id ORDER BY c.id").fetchall()
    names: dict[str, int] = {}
    ids = np.array([r[0] for r in chunk_rows], dtype=np.int64)
    collections = np.array([names.setdefault(r[1], len(names)) for r in chunk_rows],
                           dtype=np.int32)
    # bm25()'s N and average length, from public queries: FTS5's row count and every
    # token instance (the same numbers its private totals record holds).
    total_rows = int(db.execute("SELECT COUNT(*) FROM chunk_fts").fetchone()[0])
    total_tokens = len(docs)
    term_of = np.repeat(np.arange(len(terms), dtype=np.int64), counts)
    span = int(docs.max()) + 1 if len(docs) else 1
    key = term_of * span + docs
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        key.sort()  # fts5vocab walks in term then row order; never rely on it unchecked
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) \
        else np.empty(0, np.int64)
    freqs = np.diff(np.append(starts, len(key)))
    post_term, post_doc = key[starts] // span, key[starts] % span
    rows = np.searchsorted(ids, post_doc)
    if len(rows) and (int(rows.max()) >= len(ids) or
                      not bool(np.array_equal(ids[rows], post_doc))):
        raise PostingsUnavailable("a full-text row has no chunk")
    offsets = np.searchsorted(post_term, np.arange(len(terms) + 1)).astype(np.int64)
    lengths = np.bincount(rows, weights=freqs, minlength=len(ids)).astype(np.int64)
    return Postings(dict(zip(terms, range(len(terms)), strict=True)), offsets,
                    rows.astype(np.int32), np.minimum(freqs, 65535).astype(np.uint16), ids,
                    collections, _denominators(lengths, total_rows, total_tokens),
                    tuple(names), total_rows)


def _batches(counts: npt.NDArray[np.int64]) -> list[int]:
    """Last term index of each build batch of about BUILD_BATCH instances."""
    ends, running = [], 0
    for i, c in enumerate(counts.tolist()):
        running += c
        if running >= BUILD_BATCH:
            ends.append(i)
            running = 0
    if len(counts) and (not ends or ends[-1] != len(counts) - 1):
        ends.append(len(counts) - 1)
    return ends


def _blocks(p: Postings) -> tuple[list[bytes], int, int]:
    terms = "\n".join(p.terms).encode()  # a token never holds a separator
    names = json.dumps(list(p.names)).encode()
    arrays = [p.offsets.astype("<i8"), p.rows.astype("<i4"), p.freqs.astype("<u2"),
              p.ids.astype("<i8"), p.collections.astype("<i4"),
              p.denominators.astype("<f8")]
    out = [terms + b"\0" * _pad(len(terms)), names + b"\0" * _pad(len(names))]
    for array in arrays:
        data = array.tobytes()
        out.append(data + b"\0" * _pad(len(data)))
    return out, len(terms), len(names)


def write(path: Path, p: Postings, *, generation: int, stamp: int) -> None:
    blocks, terms_len, names_len = _blocks(p)
    crc = 0
    for block in blocks:
        crc = zlib.crc32(block, crc)
    header = _HEADER.pack(MAGIC, generation, len(p.ids), p.total_rows, stamp, len(p.terms),
                          len(p.rows), terms_len, names_len, crc)
    write_atomic(path, [header + b"\0" * (HEADER_BYTES - len(header)), *blocks])


def read(path: Path, *, generation: int, count: int, stamp: int) -> Loaded:
    mapped, why = map_readonly(path, HEADER_BYTES)
    if mapped is None:
        return Loaded(None, why)
    size = len(mapped)
    (magic, f_gen, f_count, total_rows, f_stamp, n_terms, n_post, terms_len, names_len,
     crc) = _HEADER.unpack_from(mapped, 0)
    if magic != MAGIC:
        return Loaded(None, "not a keyword file")
    if (f_gen, f_count, f_stamp) != (generation, count, stamp):
        return Loaded(None, f"stale (generation {f_gen}, index at {generation})")
    sizes = [terms_len, names_len, 8 * (n_terms + 1), 4 * n_post, 2 * n_post, 8 * count,
             4 * count, 8 * count]
    offsets, at = [], HEADER_BYTES
    for n in sizes:
        offsets.append(at)
        at += n + _pad(n)
    if at != size:
        return Loaded(None, "truncated or resized")
    if zlib.crc32(memoryview(mapped)[HEADER_BYTES:]) != crc:
        return Loaded(None, "checksum mismatch (corrupt)")
    try:
        text = bytes(mapped[offsets[0]:offsets[0] + terms_len]).decode()
        names = tuple(json.loads(bytes(mapped[offsets[1]:offsets[1] + names_len])))
    except ValueError:
        return Loaded(None, "corrupt terms or collection names")
    terms = text.split("\n") if n_terms else []

    def view(i: int, dtype: str, n: int) -> Any:
        return np.frombuffer(mapped, dtype=dtype, count=n, offset=offsets[i])

    return Loaded(Postings(dict(zip(terms, range(len(terms)), strict=True)),
                           view(2, "<i8", n_terms + 1), view(3, "<i4", n_post),
                           view(4, "<u2", n_post), view(5, "<i8", count),
                           view(6, "<i4", count), view(7, "<f8", count), names,
                           int(total_rows), mapped), "ok")


class Tokenizer:
    """FTS5's own tokenizer (the index's settings) on a private in-memory database: the
    tokens each query word becomes."""

    def __init__(self, module: Any) -> None:
        self.db = module.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.db.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize = '{TOKENIZE}')")
        self.db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        self._cache: dict[str, tuple[str, ...]] = {}

    def tokens(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        todo = [w for w in dict.fromkeys(words) if w not in self._cache]
        if todo:
            if len(self._cache) > _TOKEN_CACHE:
                self._cache.clear()
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)",
                                list(enumerate(todo, start=1)))
            found: dict[int, list[str]] = {}
            for term, doc in self.db.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
                found.setdefault(int(doc), []).append(str(term))
            self.db.execute("ROLLBACK")
            for i, word in enumerate(todo, start=1):
                self._cache[word] = tuple(found.get(i, ()))
        return [self._cache[w] for w in words]

    def close(self) -> None:
        self.db.close()
