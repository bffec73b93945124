"""The vector file beside the index: used only when it matches the database, rebuilt
atomically otherwise, and search results identical to reading the vectors from SQLite."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localinfer.rag import vectorfile
from localinfer.rag.bitscan import VectorCache
from localinfer.rag.chunking import Chunk
from localinfer.rag.store import Store

DIM = 64


def _store(path: Path) -> Store:
    return Store(path, embedder_id="test-vectors", dim=DIM)


def _vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _add(store: Store, name: str, vectors: np.ndarray, collection: str = "default") -> None:
    chunks = [Chunk(f"{name} chunk {i}", "", i + 1, i + 1, None, None)
              for i in range(len(vectors))]
    store.replace_document(collection=collection, path=f"/docs/{name}", kind="text",
                           sha256=name.encode().hex().ljust(64, "0"), size=0, mtime=0.0,
                           chunks=chunks, vectors=vectors)


def _from_sqlite(store: Store) -> VectorCache:
    """The old path: every vector read back from SQLite."""
    rows = store.db.execute("SELECT c.id, d.collection, c.embedding FROM chunks c "
                            "JOIN documents d ON d.id = c.doc_id ORDER BY c.id")
    return VectorCache.from_rows(rows, DIM)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("built") / "index.db"
    store = _store(path)
    _add(store, "a.txt", _vectors(4000, 1))
    _add(store, "b.txt", _vectors(500, 2), collection="other")
    assert store.sync_vectors() == "missing"  # first build writes the file
    store.close()
    return path


@pytest.fixture
def built(built_once: Path, tmp_path: Path) -> Path:
    """A copy of the index and every file beside it, for one test to change at will
    (built once per module: 4500 chunks take a fifth of a second)."""
    for file in built_once.parent.iterdir():
        shutil.copy2(file, tmp_path / file.name)
    return tmp_path / built_once.name


def test_a_reopened_index_maps_the_file_and_finds_the_same(built: Path) -> None:
    store = _store(built)
    queries = _vectors(20, 3)
    got = [store.vector_candidates(q, 10, None, bit_candidates=300) for q in queries]
    assert store.vector_source == "file"
    old = _from_sqlite(store)
    assert got == [old.nearest(q, 10, bit_candidates=300) for q in queries]
    assert (store.vector_candidates(queries[0], 5, "other", bit_candidates=300)
            == old.nearest(queries[0], 5, "other", bit_candidates=300))
    store.close()


def test_the_file_round_trips_every_array(built: Path) -> None:
    store = _store(built)
    mapped = store._vectors()
    old = _from_sqlite(store)
    for name in ("ids", "codes", "scaled", "scales", "collections"):
        assert np.array_equal(getattr(mapped, name), getattr(old, name)), name
    assert mapped.names == old.names
    store.close()


def test_a_write_the_file_has_not_seen_is_never_served(built: Path) -> None:
    writer = _store(built)
    _add(writer, "c.txt", _vectors(3, 4))  # committed, file not rebuilt (no sync_vectors)
    new_ids = [r[0] for r in writer.db.execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "WHERE d.path = '/docs/c.txt'")]
    writer.close()
    reader = _store(built)
    query = _vectors(3, 4)[0]
    assert reader.vector_candidates(query, 1, None)[0] in new_ids
    assert reader.vector_source.startswith("stale")
    reader.close()
    again = _store(built)  # the reader rewrote the file: the next open maps it
    again.vector_candidates(query, 1, None)
    assert again.vector_source == "file"
    again.close()


def test_a_change_by_another_program_makes_the_file_stale(built: Path) -> None:
    """A plain sqlite3 client knows nothing of the file; the triggers bump the
    generation anyway, so a deleted chunk is never returned from the old file."""
    reader = _store(built)
    query = _vectors(4000, 1)[7]
    (top,) = reader.vector_candidates(query, 1, None)
    reader.close()
    db = sqlite3.connect(built)
    db.execute("DELETE FROM chunks WHERE id = ?", (top,))
    db.commit()
    db.close()
    again = _store(built)
    assert top not in again.vector_candidates(query, 10, None)
    assert again.vector_source.startswith("stale")
    again.close()


def test_a_live_reader_follows_another_connections_commit(built: Path) -> None:
    reader, writer = _store(built), _store(built)
    query = _vectors(2, 9)[0]
    reader.vector_candidates(query, 1, None)
    _add(writer, "d.txt", _vectors(2, 9))
    writer.sync_vectors()
    (top,) = reader.vector_candidates(query, 1, None)
    assert reader.chunks([top])[top].path == "/docs/d.txt"
    reader.close()
    writer.close()


@pytest.mark.parametrize("damage, why", [
    (lambda b: b[:-100], "truncated"),
    (lambda b: b[:vectorfile.HEADER_BYTES + 200] + bytes([b[vectorfile.HEADER_BYTES + 200] ^ 1])
     + b[vectorfile.HEADER_BYTES + 201:], "checksum"),
    (lambda b: b"NOTAVECS" + b[8:], "not a vector file"),
    (lambda b: b[:10], "truncated"),
])
def test_a_damaged_file_is_rebuilt_from_sqlite(built: Path, damage: Any, why: str) -> None:
    file = vectorfile.path_for(built)
    file.write_bytes(damage(file.read_bytes()))
    store = _store(built)
    queries = _vectors(5, 5)
    got = [store.vector_candidates(q, 10, None, bit_candidates=300) for q in queries]
    assert why in store.vector_source
    old = _from_sqlite(store)
    assert got == [old.nearest(q, 10, bit_candidates=300) for q in queries]
    store.close()
    healed = _store(built)
    healed.vector_candidates(queries[0], 1, None)
    assert healed.vector_source == "file"
    healed.close()


def test_damage_in_the_bulk_is_found_after_opening_and_rebuilt(built: Path) -> None:
    """The sign bits and int8 copy are checked in the background: a query meanwhile may
    see a damaged candidate (re-scored exactly, so never a wrong row), and the next one
    after the check runs on a cache rebuilt from SQLite."""
    file = vectorfile.path_for(built)
    data = bytearray(file.read_bytes())
    data[-1000] ^= 0xFF  # in the int8 block
    file.write_bytes(bytes(data))
    store = _store(built)
    queries = _vectors(5, 5)
    store.vector_candidates(queries[0], 10, None)
    assert store.vector_source == "file"
    check = store._vector_check
    assert check is not None and check.wait(timeout=120) is False
    got = [store.vector_candidates(q, 10, None, bit_candidates=300) for q in queries]
    assert "checksum" in store.vector_source
    old = _from_sqlite(store)
    assert got == [old.nearest(q, 10, bit_candidates=300) for q in queries]
    store.close()
    healed = _store(built)
    healed.vector_candidates(queries[0], 1, None)
    assert healed.vector_source == "file"
    assert healed._vector_check is not None and healed._vector_check.wait(120) is True
    healed.close()


def test_rebuild_is_atomic(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader holding the old mapping keeps reading it while the file is replaced; a
    rebuild that fails before the rename leaves the old file and no temporary."""
    file = vectorfile.path_for(built)
    reader = _store(built)
    old = reader._vectors()
    before = old.scaled.copy()
    writer = _store(built)
    _add(writer, "e.txt", _vectors(50, 6))
    inode = file.stat().st_ino
    writer.sync_vectors()
    assert file.stat().st_ino != inode  # a new file was renamed into place
    assert np.array_equal(old.scaled, before)  # the old mapping is untouched
    original = file.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", fail)
    _add(writer, "f.txt", _vectors(5, 7))
    writer.sync_vectors()  # search still works; the failure is only logged
    assert writer.vector_source.startswith("stale")
    assert file.read_bytes() == original
    assert [p.name for p in built.parent.iterdir() if p.name.endswith(".tmp")] == []
    reader.close()
    writer.close()


def test_an_empty_index_has_an_empty_file(tmp_path: Path) -> None:
    store = _store(tmp_path / "empty.db")
    assert store.vector_candidates(_vectors(1, 1)[0], 5, None) == []
    store.close()
    again = _store(tmp_path / "empty.db")
    assert again.vector_candidates(_vectors(1, 1)[0], 5, None) == []
    assert again.vector_source == "file"
    again.close()


def test_a_keyword_query_first_does_not_hide_a_write_from_the_vectors(built: Path) -> None:
    """Each in-memory copy notices a write for itself (one shared mark let the keyword
    side swallow the change and the vector side serve its old cache)."""
    reader, writer = _store(built), _store(built)
    query = _vectors(2, 12)[0]
    reader.vector_candidates(query, 1, None)
    _add(writer, "g.txt", _vectors(2, 12))
    assert reader.keyword_candidates(['"chunk"'], 3, None)
    (top,) = reader.vector_candidates(query, 1, None)
    assert reader.chunks([top])[top].path == "/docs/g.txt"
    reader.close()
    writer.close()
