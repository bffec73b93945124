"""Index files written before issue 25 kept the sign bits a second time, in a sqlite-vec
``vec0`` table (``chunk_vec``) search never read. Such a file still opens: the table is
dropped on the first open (nothing else changes), or left alone where sqlite-vec cannot
be loaded; either way every document stays and search, add and remove work. And the
file can still be searched with plain SQL by a tool that loads sqlite-vec."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from localinfer.rag.bitscan import pack_bits
from localinfer.rag.chunking import Chunk
from localinfer.rag.store import Store, sqlite_module

sqlite_vec = pytest.importorskip("sqlite_vec")

DIM = 32


def _vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _add(store: Store, name: str, vectors: np.ndarray) -> None:
    chunks = [Chunk(f"{name} paragraph {i} about lanterns", "", i + 1, i + 1, None, None)
              for i in range(len(vectors))]
    store.replace_document(collection="default", path=f"/docs/{name}", kind="text",
                           sha256=name.encode().hex().ljust(64, "0"), size=0, mtime=0.0,
                           chunks=chunks, vectors=vectors)


def _extension_db(path: Path) -> sqlite3.Connection:
    """A connection with sqlite-vec loaded, as another tool would open the file."""
    module = sqlite_module()
    if not hasattr(module.Connection, "enable_load_extension"):
        pytest.skip("neither sqlite3 nor sqlean can load extensions here")
    db: sqlite3.Connection = module.connect(str(path))
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    return db


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    """An index as the previous version wrote it: the same tables, plus ``chunk_vec``
    (its statement and rows as that version made them)."""
    path = tmp_path / "index.db"
    store = Store(path, embedder_id="test-old", dim=DIM)
    _add(store, "a.txt", _vectors(40, 1))
    _add(store, "b.txt", _vectors(10, 2))
    store.close()
    db = _extension_db(path)
    db.execute("CREATE VIRTUAL TABLE chunk_vec USING vec0(collection TEXT PARTITION KEY, "
               f"embedding bit[{DIM}])")
    rows = db.execute("SELECT c.id, d.collection, c.embedding FROM chunks c "
                      "JOIN documents d ON d.id = c.doc_id").fetchall()
    for rowid, collection, blob in rows:
        bits = pack_bits(np.frombuffer(blob, dtype=np.float32).reshape(1, -1))[0]
        db.execute("INSERT INTO chunk_vec(rowid, collection, embedding) "
                   "VALUES (?, ?, vec_bit(?))", (rowid, collection, bits.tobytes()))
    db.commit()
    db.close()
    assert {"chunk_vec", "chunk_vec_rowids"} <= _tables(path)
    return path


def _works(path: Path) -> None:
    """Every document is there; search, add and remove work."""
    store = Store(path, embedder_id="test-old", dim=DIM)
    assert [d.path for d in store.documents()] == ["/docs/a.txt", "/docs/b.txt"]
    query = _vectors(40, 1)[5]
    (top,) = store.vector_candidates(query, 1, None)
    assert store.chunks([top])[top].text == "a.txt paragraph 5 about lanterns"
    assert len(store.keyword_candidates(['"lanterns"'], 100, None)) == 50
    _add(store, "c.txt", _vectors(3, 3))
    store.remove_document(store.documents()[0].id)
    assert len(store.keyword_candidates(['"lanterns"'], 100, None)) == 13
    store.close()


def test_the_old_vec0_table_is_dropped_on_open(old_file: Path) -> None:
    Store(old_file, embedder_id="test-old", dim=DIM).close()
    assert not any(name.startswith("chunk_vec") for name in _tables(old_file))
    _works(old_file)


def test_without_sqlite_vec_the_old_table_stays_unused(
        old_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlite_vec", None)  # import fails
    _works(old_file)
    assert "chunk_vec" in _tables(old_file)


def test_a_tool_with_sqlite_vec_searches_the_file_with_plain_sql(tmp_path: Path) -> None:
    """What docs/documents.md promises: sqlite-vec's distance over the float32 column."""
    path = tmp_path / "index.db"
    store = Store(path, embedder_id="test-old", dim=DIM)
    vectors = _vectors(40, 1)
    _add(store, "a.txt", vectors)
    store.close()
    db = _extension_db(path)
    rows = db.execute("SELECT c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                      "WHERE d.collection = 'default' "
                      "ORDER BY vec_distance_cosine(c.embedding, ?) LIMIT 3",
                      (vectors[7].tobytes(),)).fetchall()
    db.close()
    assert rows[0][0] == "a.txt paragraph 7 about lanterns"
