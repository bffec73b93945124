"""The in-memory vector cache against plain reference computations."""

from __future__ import annotations

import numpy as np

from localinfer.rag.bitscan import VectorCache


def _cache(vectors: np.ndarray, collections: list[str]) -> VectorCache:
    rows = [(i + 1, c, vectors[i].astype(np.float32).tobytes())
            for i, c in enumerate(collections)]
    return VectorCache.from_rows(rows, dim=vectors.shape[1])


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def test_bit_stage_keeps_the_nearest_by_hamming_distance() -> None:
    vectors = _unit(500, 384, 7)
    cache = _cache(vectors, ["a"] * 500)
    query = _unit(1, 384, 70)[0]
    hamming = ((vectors > 0) != (query > 0)).sum(axis=1)
    got = cache.nearest(query, 20, bit_candidates=50)
    # Whatever the int8 stage picks, it picks among the 50 nearest by Hamming.
    assert max(hamming[i - 1] for i in got) <= np.sort(hamming)[49]


def test_int8_stage_keeps_the_exact_nearest_among_its_candidates() -> None:
    vectors = _unit(2000, 384, 8)
    cache = _cache(vectors, ["a"] * 2000)
    query = _unit(1, 384, 80)[0]
    exact = set(np.argsort(-(vectors @ query))[:10] + 1)
    # No bit stage below bit_candidates rows: int8 scores alone pick 30 candidates.
    assert exact <= set(cache.nearest(query, 30, bit_candidates=5000))


def test_collections_filter() -> None:
    vectors = _unit(10, 64, 9)
    cache = _cache(vectors, ["a", "b"] * 5)
    assert cache.nearest(vectors[3], 1, "b") == [4]  # row 3 is id 4, in collection "b"
    assert set(cache.nearest(vectors[3], 50, "a")) == {1, 3, 5, 7, 9}
    assert cache.nearest(vectors[3], 5, "missing") == []


def test_widths_that_are_not_whole_words_still_work() -> None:
    vectors = _unit(30, 40, 10)  # 5 bytes of bits a vector
    cache = _cache(vectors, ["a"] * 30)
    assert cache.codes.dtype == np.uint8
    assert cache.nearest(vectors[7], 1, bit_candidates=10) == [8]
