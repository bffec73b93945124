"""The index on the test corpus: retrieval quality, incremental ingest, removal, sync,
search output, and `ask` with its citations (chat injected; the end-to-end run with
the embedded engine is in test_rag_netns.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localinfer.errors import NoBackend, UsageError
from localinfer.rag import Index
from localinfer.rag.blocks import DocumentError
from localinfer.rag.search import fts_query, reciprocal_rank_fusion
from localinfer.settings import Settings
from tests.support import rag as support
from tests.support.rag import QUESTIONS, assert_consistent, cli, cli_env
from tests.support.scripted import ScriptedChat

pytestmark = pytest.mark.integration  # the real embedder, the index and the CLI

embedder = support.embedder
rag_home = support.rag_home
corpus = support.corpus
index = support.index


def _found(hits: list[Any], name: str, phrase: str) -> bool:
    return any(h.chunk.path.endswith("/" + name) and phrase in h.chunk.text for h in hits)


def recall_at(index: Index, k: int) -> float:
    found = sum(_found(index.search(q, k=k), name, phrase) for q, name, phrase in QUESTIONS)
    return found / len(QUESTIONS)


def test_recall_on_paraphrased_questions(index: Index, corpus: Path) -> None:
    index.add([corpus])
    r1, r3, r5 = recall_at(index, 1), recall_at(index, 3), recall_at(index, 5)
    print(f"recall@1 {r1:.2f}  recall@3 {r3:.2f}  recall@5 {r5:.2f} "
          f"over {len(QUESTIONS)} questions")
    assert r5 >= 0.9
    assert r3 >= 0.85
    assert r1 >= 0.6


def test_keyword_search_finds_an_exact_identifier(index: Index, corpus: Path) -> None:
    index.add([corpus])
    (top,) = index.search("GRACE_DAYS", k=1)
    assert top.chunk.path.endswith("billing.py") and "GRACE_DAYS" in top.chunk.text


def test_readding_never_duplicates(index: Index, corpus: Path) -> None:
    first = index.add([corpus])
    again = index.add([corpus])
    assert len(first.added) == 6 and first.chunks > 0
    assert (again.added, again.updated, again.unchanged, again.chunks) == ([], [], 6, 0)
    assert_consistent(index.path, first.chunks)


def test_changed_file_is_reindexed_in_place(index: Index, corpus: Path) -> None:
    index.add([corpus])
    garden = corpus / "garden.txt"
    garden.write_text(garden.read_text().replace("ten days", "two weeks"))
    report = index.add([corpus])
    assert report.updated == [str(garden)] and report.unchanged == 5
    texts = " ".join(h.chunk.text for h in index.search("hardening off seedlings", k=3))
    assert "two weeks" in texts and "ten days" not in texts
    assert_consistent(index.path)


def test_sync_drops_deleted_and_adds_new_files(index: Index, corpus: Path) -> None:
    index.add([corpus])
    (corpus / "garden.txt").unlink()
    (corpus / "new-note.md").write_text("# Bees\n\nThe hives are inspected every nine days.\n")
    report = index.sync()
    assert report.removed == [str(corpus / "garden.txt")]
    assert report.added == [str(corpus / "new-note.md")]
    paths = {Path(d.path).name for d in index.documents()}
    assert "garden.txt" not in paths and "new-note.md" in paths
    assert_consistent(index.path)


def test_remove_a_file_a_folder_and_a_collection(index: Index, corpus: Path) -> None:
    index.add([corpus], collection="a")
    index.add([corpus / "handbook.md"], collection="b")
    assert index.remove([corpus / "garden.txt"]) == [str(corpus / "garden.txt")]
    assert len(index.remove([corpus], collection="a")) == 5
    assert [d.collection for d in index.documents()] == ["b"]
    assert index.remove(collection="b") == [str(corpus / "handbook.md")]
    assert index.stats()["documents"] == 0 and index.stats()["roots"] == []
    with pytest.raises(UsageError):
        index.remove()


def test_collections_are_searched_apart(index: Index, corpus: Path) -> None:
    index.add([corpus / "garden.txt"], collection="garden")
    index.add([corpus / "recipes.html"], collection="bakery")
    hits = index.search("how often is it fed", k=10, collection="garden")
    assert hits and all(h.chunk.collection == "garden" for h in hits)
    stats = index.stats()
    assert set(stats["collections"]) == {"garden", "bakery"}


def test_unreadable_files_are_skipped_with_a_reason(index: Index, corpus: Path) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (corpus / "blob.json").write_bytes(b"\0\0\0")  # a code suffix, binary content
    report = index.add([corpus])
    assert [Path(p).name for p, _ in report.skipped] == ["blob.json", "broken.pdf"]
    assert "binary content" in report.skipped[0][1]
    assert "cannot read PDF" in report.skipped[1][1]
    assert len(report.added) == 6
    with pytest.raises(DocumentError, match="no such file"):
        index.add([corpus / "missing"])


def test_embedder_mismatch_is_refused(tmp_path: Path, rag_home: Path, embedder: Any) -> None:
    path = tmp_path / "index.db"
    Index(Settings(home=rag_home), path=path, embedder=embedder).stats()

    class Other:
        id, dim = "other-model", 384

        def embed(self, texts: Any) -> Any:
            raise AssertionError("not reached")

    with pytest.raises(Exception, match="was built with embedder 'all-minilm-l6-v2'"):
        Index(Settings(home=rag_home), path=path, embedder=Other()).stats()


# search helpers ------------------------------------------------------------------------

def test_fts_query_quotes_every_word() -> None:
    assert fts_query('what is "NEAR(a b)" OR *') == '"near" OR "b"'
    assert fts_query("the of") == '"the" OR "of"'  # only stopwords: keep them
    assert fts_query("?!") is None


def test_fts_syntax_in_a_query_is_just_text(index: Index, corpus: Path) -> None:
    index.add([corpus / "billing.py"])
    for query in ['"NEAR(late fee)" OR *', "AND OR NOT", "col:value^2 -x", "?!"]:
        index.search(query, k=3)  # no FTS5 syntax error reaches the caller


def test_rrf_prefers_items_found_by_both_lists() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4]])
    assert max(fused, key=lambda i: fused[i]) == 3
    assert fused[1] > fused[2] == fused[4]  # rank, not list, decides


# search and index commands --------------------------------------------------------------

def test_cli_search_json_shape(tmp_path: Path, rag_home: Path, corpus: Path) -> None:
    env = cli_env(rag_home, tmp_path / "cli.db")
    added = subprocess.run(cli("index", "add", str(corpus), "--json"), env=env,
                           capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    assert len(json.loads(added.stdout)["added"]) == 6
    result = subprocess.run(cli("search", "when is the dome shutter closed", "-k", "2",
                                "--json"), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert len(results) == 2
    assert {"path", "start_line", "end_line", "score", "text"} <= set(results[0])
    pdf = next(r for r in results if r["path"].endswith(".pdf"))
    assert (pdf["page_start"], pdf["page_end"], pdf["start_line"]) == (2, 2, None)
    listing = subprocess.run(cli("index", "list", "--json"), env=env, capture_output=True,
                             text=True, timeout=120)
    assert len(json.loads(listing.stdout)["documents"]) == 6
    stats = subprocess.run(cli("index", "stats"), env=env, capture_output=True, text=True,
                           timeout=120)
    assert "6 documents" in stats.stdout


def test_cli_errors_are_one_line(tmp_path: Path, rag_home: Path) -> None:
    env = cli_env(rag_home, tmp_path / "cli.db")
    for args, message in [
        (("index", "add", str(tmp_path / "nope")), "no such file or directory"),
        (("search", "  "), "the search query is empty"),
        (("index", "rm"), "give paths to remove"),
    ]:
        result = subprocess.run(cli(*args), env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr


# ask -----------------------------------------------------------------------------------

def test_ask_is_sensitive_and_numbers_its_sources(index: Index, corpus: Path) -> None:
    index.add([corpus])
    chat = ScriptedChat('The dome is shut in strong wind: "closed whenever the wind speed '
                        'rises above" [1]. See also [9].')
    answer = index.ask("When is the dome shut?", k=3, client=chat)
    (call,) = chat.calls
    assert call["sensitive"] is True
    prompt = call["messages"][1]["content"]
    assert "[1] " + answer.sources[0].location in prompt and "[3] " in prompt
    # the quote is checked against source 1; the sentence citing nothing real is dropped
    assert answer.answer == ('The dome is shut in strong wind: "closed whenever the wind '
                             'speed rises above" [1].')
    assert answer.cited == [1] and not answer.attributed and answer.verified
    assert answer.unverified == ["See also [9]."]
    body = answer.as_json()
    assert body["answer"] == answer.answer and [s["n"] for s in body["sources"]] == [1, 2, 3]
    assert body["sources"][0]["path"].endswith("observatory-manual.pdf")


def test_ask_cites_uncited_sentences_by_their_shared_words(index: Index, corpus: Path) -> None:
    index.add([corpus])
    chat = ScriptedChat("The starter gets equal weights of rye flour and water twice a day. "
                        "Bananas are yellow.")
    answer = index.ask("How is the sourdough starter fed?", k=3, client=chat)
    assert answer.attributed
    n = answer.cited[0]
    assert "rye flour" in answer.sources[n - 1].chunk.text
    assert answer.answer.endswith(f"twice a day [{n}].")
    assert answer.claims[0].citations[0].quote == "equal weights of rye flour and water"
    assert answer.unverified == ["Bananas are yellow."]  # no source backs it: dropped


def test_ask_without_a_local_tier_says_so(index: Index, corpus: Path) -> None:
    index.add([corpus])
    chat = ScriptedChat(error=NoBackend("no backend can serve this"))
    with pytest.raises(NoBackend, match="never sends documents off this machine"):
        index.ask("When is the dome shut?", client=chat)


def test_ask_on_an_empty_index_says_what_to_do(index: Index) -> None:
    with pytest.raises(UsageError, match="index add"):
        index.ask("anything?", client=ScriptedChat("unused"))


def test_a_reader_sees_another_writers_new_chunks(tmp_path: Path, rag_home: Path,
                                                  embedder: Any, corpus: Path) -> None:
    """The in-memory bit cache of one connection follows commits made by another."""
    path = tmp_path / "shared.db"
    reader = Index(Settings(home=rag_home), path=path, embedder=embedder)
    writer = Index(Settings(home=rag_home), path=path, embedder=embedder)
    writer.add([corpus / "garden.txt"])
    assert all(h.chunk.path.endswith("garden.txt") for h in reader.search("bread", k=3))
    writer.add([corpus / "recipes.html"])
    assert any(h.chunk.path.endswith("recipes.html") for h in reader.search("bread", k=3))
    writer.remove([corpus / "recipes.html"])
    assert all(h.chunk.path.endswith("garden.txt") for h in reader.search("bread", k=3))
    reader.close()
    writer.close()


def test_a_local_servers_embedding_model_can_be_chosen(tmp_path: Path, run_app: Any,
                                                       corpus: Path) -> None:
    """`--embed-model` on a fresh index: vectors come from the server (the Ollama
    protocol fake), the index remembers the model, and search uses it again."""
    from tests.fakes.ollama import OllamaFake

    fake = OllamaFake()
    base = run_app(fake.app)
    settings = Settings(home=tmp_path / "home", scan_default_ports=False, servers=[base],
                        embedded=False)
    path = tmp_path / "server.db"
    with Index(settings, path=path, embed_model="nomic-embed-text") as index:
        report = index.add([corpus / "garden.txt"])
        assert report.chunks > 0 and index.stats()["embedder"] == "server:nomic-embed-text"
    embed_calls = [r for r in fake.requests if "embed" in r.path]
    assert embed_calls, "the server was asked for the vectors"
    with Index(settings, path=path) as again:  # no model named: the recorded one is used
        assert again.embedder.id == "server:nomic-embed-text"
        assert again.search("compost", k=1)
    assert len([r for r in fake.requests if "embed" in r.path]) > len(embed_calls)
