"""Keyword search returns what the plain FTS5 OR query returns (same rows, same order up
to ties), with and without a collection: MaxScore over FTS5 whatever the rare/common
split, and BM25 of our own over the postings copy (postings.py), which is used only
while its file matches the index."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from localinfer.rag import keywords, postings
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
            got = store.keyword_candidates_fts(terms, 5, collection)
            old = store.keyword_candidates_plain(terms, 5, collection)
            # Ties may come out in another order; the scores in rank order may not.
            assert _scores(store, terms, got) == _scores(store, terms, old), terms
            if collection:
                assert all(store.chunks([i])[i].collection == collection for i in got)


def test_words_nothing_contains_are_ignored(store: Store) -> None:
    for search in (store.keyword_candidates_fts, store.keyword_candidates):
        assert search(['"nowhere"'], 5, None) == []
        got = search(['"nowhere"', '"w3"'], 3, None)
        assert _scores(store, ['"w3"'], got) == _scores(
            store, ['"w3"'], store.keyword_candidates_plain(['"w3"'], 3, None))


def test_own_bm25_gives_fts5s_scores(store: Store) -> None:
    """Every matching row, in the same score order, with a collection and without;
    words given twice or stemmed alike count twice, as in FTS5."""
    store.sync_vectors()
    rng = random.Random(11)
    queries = [[f'"{w}"' for w in rng.sample(VOCAB[:200], rng.randint(1, 8))]
               for _ in range(25)] + [['"w1"', '"w1"', '"w7"'], ['"W2"', '"w2"']]
    for terms in queries:
        for collection in (None, "c2"):
            got = store.keyword_candidates(terms, 10_000, collection)
            assert store.keyword_source == "file"
            old = store.keyword_candidates_plain(terms, 10_000, collection)
            assert set(got) == set(old), terms
            assert _scores(store, terms, got) == _scores(store, terms, old), terms
            top = store.keyword_candidates(terms, 5, collection)
            assert _scores(store, terms, top) == _scores(store, terms, old)[:5]


def _one(text: str) -> list[Chunk]:
    return [Chunk(text, "", 1, 1, None, None)]


def test_a_stale_or_damaged_keyword_file_is_never_used(tmp_path: Path) -> None:
    """A write the file has not seen (ours, or a plain sqlite3 client's on the
    full-text table alone) or a damaged file: FTS5 ranks, until the next sync."""
    path = tmp_path / "i.db"
    s = Store(path, embedder_id="test-keywords", dim=16)
    one = np.ones((1, 16), dtype=np.float32)
    for n in range(3):
        s.replace_document(collection="a", path=f"/{n}", kind="text", sha256=f"{n:064x}",
                           size=0, mtime=0.0, chunks=_one(f"apple pie {n}"), vectors=one)
    s.sync_vectors()
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 3
    assert s.keyword_source == "file"
    s.replace_document(collection="a", path="/new", kind="text", sha256="f" * 64, size=0,
                       mtime=0.0, chunks=_one("apple tart"), vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 4
    assert s.keyword_source.startswith("stale")
    assert s.sync_keywords().startswith("stale")
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 4
    assert s.keyword_source == "file"
    postings.path_for(path).unlink()  # deleted by hand: the next sync writes it again
    assert s.sync_keywords() == "file"
    assert postings.path_for(path).exists()
    s.close()
    other = sqlite3.connect(path)  # knows nothing of the file; no chunk row changes
    (gone,) = other.execute("SELECT rowid FROM chunk_fts WHERE chunk_fts MATCH 'tart'"
                            ).fetchone()
    other.execute("DELETE FROM chunk_fts WHERE rowid = ?", (gone,))
    other.commit()
    other.close()
    s = Store(path, embedder_id="test-keywords", dim=16)
    assert gone not in s.keyword_candidates(['"apple"'], 5, None)
    assert s.keyword_source.startswith("stale")
    s.sync_keywords()
    file = postings.path_for(path)
    data = bytearray(file.read_bytes())
    data[postings.HEADER_BYTES + 3] ^= 1
    file.write_bytes(bytes(data))
    s.close()
    s = Store(path, embedder_id="test-keywords", dim=16)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 3
    assert "checksum" in s.keyword_source
    s.close()


def test_a_word_that_is_several_tokens_is_a_phrase(tmp_path: Path) -> None:
    """``snake_case`` is two tokens that must be adjacent: its rows come from FTS5, its
    term frequencies from its bm25(); the scores stay FTS5's."""
    s = Store(tmp_path / "i.db", embedder_id="test-keywords", dim=16)
    texts = ["call snake_case here, then snake_case again", "a snake in case of rain",
             "snake case snake_case", "snake_case " * 7 + "and more words " * 9,
             "cases of snakes", "nothing at all"]
    for n, text in enumerate(texts):
        s.replace_document(collection="a", path=f"/{n}", kind="text", sha256=f"{n:064x}",
                           size=0, mtime=0.0, chunks=_one(text),
                           vectors=np.ones((1, 16), dtype=np.float32))
    s.sync_vectors()
    for terms in (['"snake_case"'], ['"snake_case"', '"rain"'], ['"snakes"', '"case"'],
                  ['"snake_case"', '"nowhere_at_all"', '"case"']):
        got = s.keyword_candidates(terms, 10, None)
        assert s.keyword_source == "file"
        old = s.keyword_candidates_plain(terms, 10, None)
        assert set(got) == set(old), terms
        assert _scores(s, terms, got) == _scores(s, terms, old), terms
    assert len(s.keyword_candidates(['"snake_case"'], 10, None)) == 3
    s.close()


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
