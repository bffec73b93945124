"""In-memory candidate search: sign bits first, then int8, for the exact pass to finish.

Every stored vector is held twice in memory, read once from the index (and again after
any commit): its sign bits (48 bytes for 384 dimensions) and an int8 copy scaled per
vector (388 bytes; 39 MB at 100k chunks). A query scans all the bits with a popcount (a
few milliseconds at 100k chunks), keeps the few thousand nearest by Hamming distance,
orders those by int8 dot product, and hands the best to the caller for exact float32
re-scoring from SQLite.

Why not sqlite-vec's own KNN over a ``vec0`` bit table (which the index kept until issue
25): its cost grows with the number of candidates asked for (bench/bench_index.py keeps
the comparison: k=1000 takes ~170 ms at 100k chunks), and recall@10 >= 0.95 against
exact search at 100k needs about 3000 bit candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# Column-major: (words, n) of uint64, or (bytes, n) of uint8 when the width is not whole
# words. Row-major (n, words) made numpy sum 6 popcounts per row along a 6-long axis,
# ~17x slower at 100k rows than adding whole columns (measured).
Codes = npt.NDArray[Any]

BIT_CANDIDATES = 3000
SCALE_DIVISOR = 100
SCAN_BLOCK = 1 << 15


def pack_bits(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Sign bits, 8 dimensions a byte. Hamming distance ignores the bit order as long as
    stored and query vectors are packed alike, which this one function ensures."""
    return np.packbits(vectors > 0, axis=-1, bitorder="little")


def as_words(packed: npt.NDArray[np.uint8]) -> Codes:
    """View packed bits as 64-bit words (8x fewer popcounts) when the width allows."""
    packed = np.ascontiguousarray(packed)
    return packed.view(np.uint64) if packed.shape[-1] % 8 == 0 else packed


def as_columns(packed: npt.NDArray[np.uint8]) -> Codes:
    """(n, bytes) of packed bits as the column-major ``Codes`` the scan reads."""
    return np.ascontiguousarray(as_words(packed).T)


def dot_rows(matrix: npt.NDArray[np.float32], vector: npt.NDArray[np.float32]
             ) -> npt.NDArray[np.float32]:
    """``matrix @ vector`` without BLAS: OpenBLAS hands a matrix-vector product of a few
    thousand rows to its thread pool, and waking it costs ~8 ms on a busy 2-core machine
    (measured), 100x the product itself. einsum's own loop has no threads."""
    return np.asarray(np.einsum("ij,j->i", matrix, vector.astype(np.float32)),
                      dtype=np.float32)


def hamming(codes: Codes, q: Codes) -> npt.NDArray[np.uint16]:
    """Hamming distance of every column of ``codes`` to ``q`` (one word or byte per
    row of ``codes``), in blocks that stay in cache (one pass over the whole array made
    three round trips to memory at 1M rows), into buffers allocated once."""
    n = codes.shape[1]
    out = np.zeros(n, dtype=np.uint16)
    xor = np.empty(min(n, SCAN_BLOCK), dtype=codes.dtype)
    count = np.empty(min(n, SCAN_BLOCK), dtype=np.uint8)
    for start in range(0, n, SCAN_BLOCK):
        stop = min(n, start + SCAN_BLOCK)
        acc, x, c = out[start:stop], xor[:stop - start], count[:stop - start]
        for word in range(codes.shape[0]):
            np.bitwise_xor(codes[word, start:stop], q[word], out=x)
            np.bitwise_count(x, out=c)
            np.add(acc, c, out=acc)
    return out


def nearest_codes(codes: Codes, q: Codes, count: int) -> npt.NDArray[np.intp]:
    """Positions of the ``count`` rows nearest ``q`` by Hamming distance (any order):
    a histogram of the few hundred possible distances finds the cut, so only the rows
    at the cut need a partial sort."""
    distance = hamming(codes, q)
    cut = int(np.searchsorted(np.cumsum(np.bincount(distance)), count))
    inside = np.flatnonzero(distance < cut)
    at_cut = np.flatnonzero(distance == cut)[:count - len(inside)]
    return np.concatenate([inside, at_cut])


@dataclass(frozen=True)
class VectorCache:
    ids: npt.NDArray[np.int64]
    codes: Codes
    scaled: npt.NDArray[np.int8]  # round(x / max|x| * 127), one row a vector
    scales: npt.NDArray[np.float32]  # max|x| / 127
    collections: npt.NDArray[np.int32]  # index into ``names``
    names: tuple[str, ...]
    # What the arrays are views of (a mmap, in vectorfile.py): kept alive with them.
    backing: object = field(default=None, compare=False, repr=False)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, str, bytes]], dim: int) -> VectorCache:
        """Rows of (chunk id, collection, float32 vector bytes)."""
        ids: list[int] = []
        names: dict[str, int] = {}
        which: list[int] = []
        blobs: list[bytes] = []
        for rowid, collection, blob in rows:
            ids.append(rowid)
            which.append(names.setdefault(collection, len(names)))
            blobs.append(blob)
        floats = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dim)
        scales = np.abs(floats).max(axis=1, initial=1e-12) / 127
        scaled = np.round(floats / scales[:, None]).astype(np.int8)
        return cls(np.array(ids, dtype=np.int64), as_columns(pack_bits(floats)), scaled,
                   scales.astype(np.float32), np.array(which, dtype=np.int32), tuple(names))

    def __len__(self) -> int:
        return len(self.ids)

    def nearest(self, query: npt.NDArray[np.float32], k: int, collection: str | None = None,
                *, bit_candidates: int = BIT_CANDIDATES) -> list[int]:
        """Ids of (about) the ``k`` nearest vectors, nearest first."""
        rows: npt.NDArray[np.intp] | None = None  # None: every row (no 8 MB arange at 1M)
        if collection is not None:
            if collection not in self.names:
                return []
            rows = np.flatnonzero(self.collections == self.names.index(collection))
        n = len(self.ids) if rows is None else len(rows)
        if not n:
            return []
        # Past ~300k chunks 3000 candidates lose recall; 1% of the rows keeps it.
        bit_candidates = max(bit_candidates, n // SCALE_DIVISOR)
        if n > bit_candidates:
            q = as_words(pack_bits(query.reshape(1, -1)))[0]
            codes = self.codes if rows is None else self.codes[:, rows]
            picked = nearest_codes(codes, q, bit_candidates)
            rows = picked if rows is None else rows[picked]
        elif rows is None:
            rows = np.arange(n)
        scores = dot_rows(np.take(self.scaled, rows, axis=0).astype(np.float32),
                          query) * self.scales[rows]
        if k < len(rows):
            best = np.argpartition(-scores, k)[:k]
            rows, scores = rows[best], scores[best]
        return [int(i) for i in self.ids[rows[np.argsort(-scores, kind="stable")]]]
