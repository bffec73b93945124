"""Answers you can check: a sentence stays only with a citation whose span is found in
the cited chunk (checked by code); otherwise the best passages, labelled extractive.
The model is scripted (tests/support/scripted.py's ScriptedChat); retrieval is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from localinfer.rag import Index
from localinfer.rag.answer_model import answering_settings, larger_pulled_model
from localinfer.rag.ask import check
from localinfer.settings import Settings
from tests.support import rag as support
from tests.support.scripted import ScriptedChat

embedder = support.embedder
rag_home = support.rag_home
corpus = support.corpus
index = support.index

QUESTION = "When is the dome shutter closed?"
OLD_KEYS = {"answer", "sources", "cited", "citations_attributed", "backend", "tier", "model"}


@pytest.mark.integration
def test_a_quote_found_in_the_cited_chunk_is_verified(index: Index, corpus: Path) -> None:
    index.add([corpus])
    chat = ScriptedChat('It closes in strong wind: "whenever the wind speed rises above '
                        'forty kilometres per hour" [1].')
    answer = index.ask(QUESTION, k=3, client=chat)
    assert answer.verified and not answer.extractive
    (claim,) = answer.claims
    (citation,) = claim.citations
    assert citation.by == "model" and citation.n == 1
    source = answer.sources[0].chunk.text
    assert citation.quote in source  # the chunk's own text (its line break kept)
    assert " ".join(citation.quote.split()) == ("whenever the wind speed rises above forty "
                                                "kilometres per hour")
    body = answer.as_json()
    assert set(body) >= OLD_KEYS and body["verified"] is True
    assert body["claims"][0]["citations"][0]["quote"] == citation.quote


@pytest.mark.integration
def test_a_span_that_is_not_in_the_chunk_is_rejected(index: Index, corpus: Path) -> None:
    index.add([corpus])
    chat = ScriptedChat('The shutter closes "when the temperature falls below zero" [1].')
    answer = index.ask(QUESTION, k=3, client=chat)
    assert answer.extractive and not answer.verified and answer.claims == []
    assert answer.unverified == [chat.answer]
    assert answer.model_answer == chat.answer
    top = answer.sources[0]
    assert top.chunk.text.strip() in answer.answer and top.location in answer.answer
    body = answer.as_json()
    assert body["extractive"] is True and "extractive" in body["note"]
    assert body["cited"] == [1, 2]


@pytest.mark.integration
@pytest.mark.parametrize("said", ["", "The source is not mentioned.", "I do not know [2]."])
def test_an_answer_citing_nothing_checkable_is_extractive(index: Index, corpus: Path,
                                                          said: str) -> None:
    index.add([corpus])
    answer = index.ask(QUESTION, k=3, client=ScriptedChat(said))
    assert answer.extractive and answer.note and "wind speed" in answer.answer


@pytest.mark.integration
def test_only_backed_sentences_are_kept(index: Index, corpus: Path) -> None:
    index.add([corpus])
    chat = ScriptedChat('The shutter closes "whenever the wind speed rises above" [2]. '
                        'It also closes "during every full moon night" [1].')
    answer = index.ask(QUESTION, k=3, client=chat)
    assert answer.verified
    (claim,) = answer.claims
    n = claim.citations[0].n
    # the model said [2]; the span is in the source that really holds it
    assert "wind speed" in answer.sources[n - 1].chunk.text
    assert claim.text.endswith(f"[{n}].") and ("[2]" not in claim.text or n == 2)
    assert answer.unverified == ['It also closes "during every full moon night" [1].']
    assert answer.note and "dropped" in answer.note


def test_words_match_across_case_punctuation_and_line_breaks() -> None:
    chunk = "Weather limits\nThe dome shutter is closed whenever the wind\nspeed rises."
    claims, dropped = check('Per the manual, "THE WIND SPEED RISES" [1].', [chunk])
    assert dropped == [] and claims[0].citations[0].quote == "the wind\nspeed rises"


def test_short_shared_runs_and_short_quotes_prove_nothing() -> None:
    chunk = "The dome shutter is closed whenever the wind speed rises above forty."
    claims, dropped = check('The dome is closed "the wind" [1]. The dome shutter is open.',
                            [chunk])
    assert claims == [] and len(dropped) == 2


def test_a_sentence_repeating_a_source_is_cited_to_it() -> None:
    chunks = ["Bread is baked daily.", "Members may book at most four nights per month."]
    (claim,), _ = check("You may book at most four nights per month in winter.", chunks)
    assert claim.citations[0].n == 2 and claim.citations[0].by == "overlap"
    assert claim.text == "You may book at most four nights per month in winter [2]."


def test_a_larger_pulled_gguf_answers(tmp_path: Path) -> None:
    from localinfer.assets.cache import ModelCache

    settings = Settings(home=tmp_path / "home")
    assert answering_settings(settings, None) == (settings, None)
    cache = ModelCache.for_settings(settings)
    for name, size, filename in [("qwen2.5-1.5b-instruct", 1100 << 20, "qwen.gguf"),
                                 ("tiny-chat", 60 << 20, "tiny.gguf"),
                                 ("nomic-embed-text", 270 << 20, "nomic.gguf"),
                                 ("phi-3-mini", 2300 << 20, "phi.gguf")]:
        sha = f"{abs(hash(name)):064x}"[:64]
        blob = cache.blob_path(sha)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(b"GGUF")  # the size that counts is the recorded one
        cache.record(name, sha, size, filename, "test")
    chosen = larger_pulled_model(settings)
    assert chosen is not None and chosen.name in {"phi-3-mini", "qwen2.5-1.5b-instruct"}
    updated, path = answering_settings(settings, None)
    assert path == chosen.path and updated.embedded_model == chosen.path
    # a model named by the caller, or an embedded_model already set, is left alone
    assert answering_settings(settings, "llama3")[1] is None
    pinned = Settings(home=tmp_path / "home", embedded_model=tmp_path / "mine.gguf")
    assert answering_settings(pinned, None)[1] is None
