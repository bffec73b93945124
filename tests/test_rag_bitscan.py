"""The bit-vector candidate scan against a plain reference computation."""

from __future__ import annotations

import numpy as np

from localinfer.rag.bitscan import BitMatrix
from localinfer.rag.store import pack_bits


def _matrix(vectors: np.ndarray, collections: list[str]) -> BitMatrix:
    packed = pack_bits(vectors)
    rows = [(i + 1, c, packed[i].tobytes()) for i, c in enumerate(collections)]
    return BitMatrix.from_rows(rows, nbytes=packed.shape[1])


def test_nearest_matches_a_bit_by_bit_hamming_ranking() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((500, 384)).astype(np.float32)
    matrix = _matrix(vectors, ["a"] * 500)
    query = rng.standard_normal(384).astype(np.float32)
    signs = vectors > 0
    distance = (signs != (query > 0)).sum(axis=1)
    got = matrix.nearest(pack_bits(query.reshape(1, -1))[0], 20)
    assert [distance[i - 1] for i in got] == sorted(distance)[:20]


def test_nearest_filters_by_collection_and_handles_small_sets() -> None:
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((10, 64)).astype(np.float32)
    matrix = _matrix(vectors, ["a", "b"] * 5)
    query = pack_bits(vectors[3:4])[0]
    assert matrix.nearest(query, 3, "b")[0] == 4  # row 3 is id 4, in collection "b"
    assert set(matrix.nearest(query, 50, "a")) == {1, 3, 5, 7, 9}
    assert matrix.nearest(query, 5, "missing") == []


def test_widths_that_are_not_whole_words_still_work() -> None:
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((30, 40)).astype(np.float32)  # 5 bytes a vector
    matrix = _matrix(vectors, ["a"] * 30)
    assert matrix.codes.dtype == np.uint8
    assert matrix.nearest(pack_bits(vectors[7:8])[0], 1) == [8]
