"""MaxScore keyword search returns what the plain FTS5 OR query returns (same rows, same
order up to ties), with and without a collection, whatever the rare/common split."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from localinfer.rag import keywords
from localinfer.rag.chunking import Chunk
from localinfer.rag.store import Store

VOCAB = [f"w{i}" for i in range(400)]


def _zipf_text(rng: random.Random) -> str:
    # Word i appears with weight 1/(i+1): a few words in most rows, most words rare.
    return " ".join(rng.choices(VOCAB, weights=[1 / (i + 1) for i in range(len(VOCAB))],
                                k=rng.randint(5, 60)))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("kw") / "index.db"
    s = Store(path, embedder_id="test-keywords", dim=16)
    rng = random.Random(3)
    for doc in range(60):
        chunks = [Chunk(_zipf_text(rng), "", 1, 1, None, None) for _ in range(50)]
        vectors = np.ones((50, 16), dtype=np.float32)
        s.replace_document(collection=f"c{doc % 3}", path=f"/d/{doc}", kind="text",
                           sha256=f"{doc:064x}", size=0, mtime=0.0, chunks=chunks,
                           vectors=vectors)
    return s


def _scores(store: Store, terms: list[str], ids: list[int]) -> list[float]:
    rows = dict(store.keywords._ranked(" OR ".join(terms), 10_000, None))
    return [round(rows[i], 9) for i in ids]


@pytest.mark.parametrize("rare_rows", [1, 50, 2000])
def test_same_top_k_as_the_plain_query(store: Store, rare_rows: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keywords, "RARE_ROWS", rare_rows)
    rng = random.Random(rare_rows)
    for _ in range(15):
        terms = [f'"{w}"' for w in rng.sample(VOCAB[:120], rng.randint(1, 8))]
        for collection in (None, "c1"):
            got = store.keyword_candidates(terms, 5, collection)
            old = store.keyword_candidates_plain(terms, 5, collection)
            # Ties may come out in another order; the scores in rank order may not.
            assert _scores(store, terms, got) == _scores(store, terms, old), terms
            if collection:
                assert all(store.chunks([i])[i].collection == collection for i in got)


def test_words_nothing_contains_are_ignored(store: Store) -> None:
    assert store.keyword_candidates(['"nowhere"'], 5, None) == []
    assert store.keyword_candidates(['"nowhere"', '"w3"'], 3, None) == \
        store.keyword_candidates_plain(['"w3"'], 3, None)


def test_frequencies_follow_new_writes(tmp_path: Path) -> None:
    s = Store(tmp_path / "i.db", embedder_id="test-keywords", dim=16)
    one = np.ones((1, 16), dtype=np.float32)
    s.replace_document(collection="a", path="/a", kind="text", sha256="a" * 64, size=0,
                       mtime=0.0, chunks=[Chunk("apple pie", "", 1, 1, None, None)],
                       vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 1
    assert s.keywords.frequency('"apple"') == 1
    s.replace_document(collection="a", path="/b", kind="text", sha256="b" * 64, size=0,
                       mtime=0.0, chunks=[Chunk("apple tart", "", 1, 1, None, None)],
                       vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 2
    assert s.keywords.frequency('"apple"') == 2
    s.close()
