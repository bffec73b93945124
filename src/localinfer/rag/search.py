"""Hybrid retrieval: nearest vectors and best keyword matches, fused by reciprocal rank.

Reciprocal rank fusion (Cormack et al., 2009) adds ``1 / (60 + rank)`` over the lists a
chunk appears in: it needs no score calibration between cosine and BM25, and a chunk
found by both wins. Vector search narrows in stages: Hamming distance over sign bits,
then int8 dot products, then exact float32 cosine (bitscan.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.onnx.embedder import Embedder, Vectors
from .bitscan import BIT_CANDIDATES, dot_rows
from .store import ChunkRow, Store

RRF_K = 60
RANK_WINDOW = 5
# Candidates (found by bits, ordered by int8) re-scored exactly in float32.
VECTOR_CANDIDATES = 100

_WORD = re.compile(r"\w+", re.UNICODE)
# Words that match nearly every chunk and only add noise to a keyword query.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do",
    "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "no", "not", "of", "on", "or", "our", "should", "so", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we",
    "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
    "your",
})


@dataclass(frozen=True)
class Hit:
    chunk: ChunkRow
    score: float  # fused RRF score: higher is better
    similarity: float | None  # cosine to the query, when the vector search saw it

    def as_json(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "path": c.path, "start_line": c.start_line, "end_line": c.end_line,
            "page_start": c.page_start, "page_end": c.page_end,
            "score": round(self.score, 6), "text": c.text,
            "heading": c.heading, "collection": c.collection,
        }

    @property
    def location(self) -> str:
        """``path:12-20`` or ``path#page=3``: where to look."""
        c = self.chunk
        if c.page_start is not None:
            pages = (f"{c.page_start}" if c.page_start == c.page_end
                     else f"{c.page_start}-{c.page_end}")
            return f"{c.path}#page={pages}"
        if c.start_line is not None:
            return f"{c.path}:{c.start_line}-{c.end_line}"
        return c.path


def fts_terms(text: str) -> list[str]:
    """The content words of ``text`` as FTS5 phrases, each quoted so user input can never
    be read as FTS5 syntax."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    if not words:
        words = _WORD.findall(text.lower())
    return [f'"{w}"' for w in dict.fromkeys(words)]


def fts_query(text: str) -> str | None:
    """An FTS5 query matching any content word of ``text``."""
    terms = fts_terms(text)
    return " OR ".join(terms) if terms else None


def vector_search(store: Store, query: Vectors, k: int, collection: str | None, *,
                  candidates: int = VECTOR_CANDIDATES,
                  bit_candidates: int = BIT_CANDIDATES) -> list[tuple[int, float]]:
    """(chunk id, cosine) of the ``k`` nearest chunks: approximate candidates from the
    in-memory cache, then exact float32 cosine."""
    ids = store.vector_candidates(query, max(candidates, k), collection,
                                  bit_candidates=bit_candidates)
    ids, matrix = store.embeddings(ids)
    if not ids:
        return []
    sims = dot_rows(matrix, query)
    order = np.argsort(-sims)[:k]
    return [(ids[i], float(sims[i])) for i in order]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K
                           ) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def hybrid_search(store: Store, embedder: Embedder, query: str, *, k: int = 5,
                  collection: str | None = None) -> list[Hit]:
    # Each list contributes its top ``window`` (as Elasticsearch's rank_window_size
    # does): deeper lists let weak matches that appear in both outrank a chunk that
    # only one list ranks first.
    pool = max(k, RANK_WINDOW)
    vector = embedder.embed([query])[0]
    nearest = vector_search(store, vector, pool, collection)
    terms = fts_terms(query)
    keywords = store.keyword_candidates(terms, pool, collection) if terms else []
    fused = reciprocal_rank_fusion([[i for i, _ in nearest], keywords])
    best = sorted(fused, key=lambda i: -fused[i])[:k]
    rows = store.chunks(best)
    sims = dict(nearest)
    return [Hit(rows[i], fused[i], sims.get(i)) for i in best if i in rows]
