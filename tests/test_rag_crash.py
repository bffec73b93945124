"""Faults with real processes: SIGKILL in the middle of an ingest, and two writers at
once. The index must open afterwards, hold no half-written document, and a re-run must
finish the job without duplicating anything."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from localinfer.rag import Index
from localinfer.rag.chunking import chunk_blocks
from localinfer.rag.loaders import iter_files, load
from localinfer.settings import Settings
from tests.support import rag as support
from tests.support.rag import assert_consistent, cli, cli_env

embedder = support.embedder
rag_home = support.rag_home

pytestmark = pytest.mark.slow

VOCABULARY = [
    "river", "mountain", "ledger", "invoice", "harvest", "orbit", "lantern", "copper",
    "meadow", "signal", "archive", "compass", "harbor", "violin", "glacier", "pepper",
    "thunder", "cobalt", "saddle", "beacon", "quarry", "velvet", "almond", "ember", "falcon",
    "granite", "hollow", "island", "jasmine", "kettle", "lumber", "marble", "nectar", "oyster",
    "pebble", "quartz", "raven", "summit", "timber", "umbrella", "valley", "walnut", "yarrow",
    "zephyr",
]


def write_documents(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` small text files, two or three paragraphs each, all different."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        paragraphs = []
        for _ in range(rng.randint(2, 3)):
            words = rng.choices(VOCABULARY, k=rng.randint(40, 80))
            paragraphs.append(f"Note {seed}-{n}. " + " ".join(words) + ".")
        path = folder / f"note-{n:04d}.txt"
        path.write_text("\n\n".join(paragraphs) + "\n")
        paths.append(path)
    return paths


def expected_chunks(folders: list[Path]) -> int:
    return sum(len(chunk_blocks(load(p, p.read_bytes())[1])) for p in iter_files(folders))


def documents_in(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def kill_when(process: subprocess.Popen[str], db: Path, at_least: int,
              timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = documents_in(db)
        if done >= at_least:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return done
        if process.poll() is not None:
            pytest.fail(f"ingest ended before it could be killed: {process.stderr.read()}"
                        if process.stderr else "ingest ended early")
        time.sleep(0.02)
    process.kill()
    pytest.fail("ingest made no progress")


def test_sigkill_mid_ingest_leaves_an_index_a_rerun_completes(tmp_path: Path,
                                                               rag_home: Path) -> None:
    docs = tmp_path / "docs"
    total = len(write_documents(docs, 100, seed=1))
    db = tmp_path / "index.db"
    env = cli_env(rag_home, db)
    committed = []
    for stop_at in (15, 50):  # two crashes, at different points
        process = subprocess.Popen(cli("index", "add", str(docs)), env=env, text=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        committed.append(kill_when(process, db, stop_at))
        assert process.returncode == -signal.SIGKILL
        # The killed writer's index opens, checks clean, and holds whole documents only.
        with Index(Settings(home=rag_home), path=db) as index:
            assert index.store.check() == "ok"
            assert total > index.stats()["documents"] >= stop_at
        assert_consistent(db)

    before = documents_in(db)
    result = subprocess.run(cli("index", "add", str(docs), "--json"), env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["unchanged"] == before
    assert len(report["added"]) == total - before
    assert documents_in(db) == total
    assert_consistent(db, expected_chunks([docs]))


def test_two_writers_at_once_are_serialised(tmp_path: Path, rag_home: Path) -> None:
    a, b, shared = tmp_path / "a", tmp_path / "b", tmp_path / "shared"
    write_documents(a, 25, seed=2)
    write_documents(b, 25, seed=3)
    write_documents(shared, 25, seed=4)
    db = tmp_path / "index.db"
    env = cli_env(rag_home, db)
    # Both write the shared folder too: the same documents race into the same rows.
    writers = [subprocess.Popen(cli("index", "add", str(x), str(shared), "--json"), env=env,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for x in (a, b)]
    outputs = [w.communicate(timeout=600) for w in writers]
    for writer, (_out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert "locked" not in err
    reports = [json.loads(out) for out, _ in outputs]
    shared_names = {str(p) for p in iter_files([shared])}
    stored_by = [set(r["added"]) & shared_names for r in reports]
    # Each shared document was stored by exactly one of the two writers.
    assert stored_by[0] | stored_by[1] == shared_names
    assert not stored_by[0] & stored_by[1]
    assert documents_in(db) == 75
    assert_consistent(db, expected_chunks([a, b, shared]))
