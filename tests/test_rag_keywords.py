"""Keyword search ranks by FTS5's own BM25 (same rows, same scores, same order up to
ties; FTS5's ``bm25()`` queried directly is the reference), with and without a
collection: through the postings copy (postings.py), which is used only while its file
matches the index and rebuilt from FTS5 otherwise, and through FTS5 alone when the copy
cannot be built."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localinfer.rag import postings
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


def _fts5(store: Store, terms: list[str], collection: str | None = None
          ) -> dict[int, float]:
    """Every row matching any of ``terms`` with FTS5's own bm25(): the reference."""
    sql = ("SELECT f.rowid, bm25(chunk_fts) FROM chunk_fts f JOIN chunks c ON c.id = "
           "f.rowid JOIN documents d ON d.id = c.doc_id WHERE chunk_fts MATCH ?"
           + (" AND d.collection = ?" if collection else ""))
    args: tuple[Any, ...] = (" OR ".join(terms), collection) if collection else (
        " OR ".join(terms),)
    return {int(r[0]): float(r[1]) for r in store.db.execute(sql, args)}


def _scores(store: Store, terms: list[str], ids: list[int]) -> list[float]:
    rows = _fts5(store, terms)
    return [round(rows[i], 9) for i in ids]


def _best(store: Store, terms: list[str], k: int, collection: str | None = None
          ) -> list[float]:
    """FTS5's k best scores, best first (bm25(): lower is better)."""
    return sorted(round(v, 9) for v in _fts5(store, terms, collection).values())[:k]


def test_words_nothing_contains_are_ignored(store: Store) -> None:
    assert store.keyword_candidates(['"nowhere"'], 5, None) == []
    got = store.keyword_candidates(['"nowhere"', '"w3"'], 3, None)
    assert _scores(store, ['"w3"'], got) == _best(store, ['"w3"'], 3)


def test_own_bm25_gives_fts5s_scores(store: Store) -> None:
    """Every matching row, in the same score order, with a collection and without;
    words given twice or stemmed alike count twice, as in FTS5."""
    store.sync_vectors()
    mapped = Store(store.path, embedder_id="test-keywords", dim=16)  # maps the file
    rng = random.Random(11)
    queries = [[f'"{w}"' for w in rng.sample(VOCAB[:200], rng.randint(1, 8))]
               for _ in range(25)] + [['"w1"', '"w1"', '"w7"'], ['"W2"', '"w2"']]
    for terms in queries:
        for collection in (None, "c2"):
            got = mapped.keyword_candidates(terms, 10_000, collection)
            assert mapped.keyword_source == "file"
            assert set(got) == set(_fts5(store, terms, collection)), terms
            assert _scores(store, terms, got) == _best(store, terms, 10_000, collection)
            top = mapped.keyword_candidates(terms, 5, collection)
            assert _scores(store, terms, top) == _best(store, terms, 5, collection)
            if collection:
                assert all(store.chunks([i])[i].collection == collection for i in top)
    mapped.close()


def test_fts5_ranks_alone_when_the_copy_cannot_be_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full-text table the copy cannot represent: FTS5's own ranking answers (same
    scores), and the build is not retried on every query, only after a write."""
    s = Store(tmp_path / "i.db", embedder_id="test-keywords", dim=16)
    one = np.ones((1, 16), dtype=np.float32)
    for n, text in enumerate(["apple pie", "apple apple tart", "pear", "apple"]):
        s.replace_document(collection="a", path=f"/{n}", kind="text", sha256=f"{n:064x}",
                           size=0, mtime=0.0, chunks=_one(text), vectors=one)
    calls: list[int] = []

    def cannot(db: object) -> postings.Postings:
        calls.append(1)
        raise postings.PostingsUnavailable("a layout this test made up")

    monkeypatch.setattr(postings, "build", cannot)
    for collection in (None, "a"):
        got = s.keyword_candidates(['"apple"', '"tart"'], 5, collection)
        assert s.keyword_source.startswith("unavailable")
        assert _scores(s, ['"apple"', '"tart"'], got) == _best(s, ['"apple"', '"tart"'], 5)
    assert len(calls) == 1
    s.replace_document(collection="a", path="/new", kind="text", sha256="f" * 64, size=0,
                       mtime=0.0, chunks=_one("apple crumble"), vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 4
    assert len(calls) == 2
    s.close()


def _one(text: str) -> list[Chunk]:
    return [Chunk(text, "", 1, 1, None, None)]


def test_a_stale_or_damaged_keyword_file_is_never_used(tmp_path: Path) -> None:
    """A write the file has not seen (ours, or a plain sqlite3 client's on the
    full-text table alone) or a damaged file: the copy is rebuilt from FTS5 and the
    file rewritten, so the next open maps it again."""
    path = tmp_path / "i.db"
    s = Store(path, embedder_id="test-keywords", dim=16)
    one = np.ones((1, 16), dtype=np.float32)
    for n in range(3):
        s.replace_document(collection="a", path=f"/{n}", kind="text", sha256=f"{n:064x}",
                           size=0, mtime=0.0, chunks=_one(f"apple pie {n}"), vectors=one)
    assert s.sync_vectors() == "missing"  # the first sync writes both files
    assert postings.path_for(path).exists()
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 3
    s.replace_document(collection="a", path="/new", kind="text", sha256="f" * 64, size=0,
                       mtime=0.0, chunks=_one("apple tart"), vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 4
    assert s.keyword_source.startswith("stale")
    postings.path_for(path).unlink()  # deleted by hand: the next sync writes it again
    s.sync_keywords()
    assert postings.path_for(path).exists()
    s.close()
    s = Store(path, embedder_id="test-keywords", dim=16)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 4
    assert s.keyword_source == "file"
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
    file = postings.path_for(path)
    data = bytearray(file.read_bytes())
    data[postings.HEADER_BYTES + 3] ^= 1
    file.write_bytes(bytes(data))
    s.close()
    s = Store(path, embedder_id="test-keywords", dim=16)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 3
    assert "checksum" in s.keyword_source
    assert _scores(s, ['"apple"'], s.keyword_candidates(['"apple"'], 5, None)) == _best(
        s, ['"apple"'], 5)
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
    s.close()
    s = Store(tmp_path / "i.db", embedder_id="test-keywords", dim=16)  # maps the file
    for terms in (['"snake_case"'], ['"snake_case"', '"rain"'], ['"snakes"', '"case"'],
                  ['"snake_case"', '"nowhere_at_all"', '"case"']):
        got = s.keyword_candidates(terms, 10, None)
        assert s.keyword_source == "file"
        assert set(got) == set(_fts5(s, terms)), terms
        assert _scores(s, terms, got) == _best(s, terms, 10), terms
    assert len(s.keyword_candidates(['"snake_case"'], 10, None)) == 3
    s.close()


def test_results_follow_new_writes(tmp_path: Path) -> None:
    """Our own write and another connection's, with no sync in between."""
    path = tmp_path / "i.db"
    s, other = (Store(path, embedder_id="test-keywords", dim=16) for _ in range(2))
    one = np.ones((1, 16), dtype=np.float32)
    s.replace_document(collection="a", path="/a", kind="text", sha256="a" * 64, size=0,
                       mtime=0.0, chunks=_one("apple pie"), vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 1
    s.replace_document(collection="a", path="/b", kind="text", sha256="b" * 64, size=0,
                       mtime=0.0, chunks=_one("apple tart"), vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 2
    other.replace_document(collection="a", path="/c", kind="text", sha256="c" * 64, size=0,
                           mtime=0.0, chunks=_one("apple crumble"), vectors=one)
    assert len(s.keyword_candidates(['"apple"'], 5, None)) == 3
    s.close()
    other.close()
