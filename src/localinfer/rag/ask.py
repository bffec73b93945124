"""Answer a question from retrieved chunks, with citations checked by code.

The prompt numbers the sources and asks for ``[n]`` markers after short verbatim quotes.
Nothing the model says about its sources is trusted: each answer sentence is kept only
if it carries a citation whose quoted span is found, word for word, in the cited chunk.
A span is either the model's own quote (in double quotes) or, when the model quoted
nothing that checks, the longest run of at least ``MIN_SPAN_WORDS`` words the sentence
shares with a source. Words are compared case-insensitively, ignoring the punctuation
and spacing between them; the span shown is the chunk's own text. Sentences that no
source backs are dropped from the answer (and listed). When no sentence is left, the
answer is *extractive*: the best passages themselves, labelled as such, so a user is
never left with less than the passage.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..types import ChatResponse
from .search import Hit

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. "
    "Support each sentence with a short exact quote from a source in double quotes, "
    'followed by the source number in square brackets, like: The shop opens at nine: '
    '"opens at nine every weekday" [1]. '
    "If the sources do not contain the answer, say that you do not know."
)
# A shorter shared run of words ("the dome is closed") is too likely by chance.
MIN_SPAN_WORDS = 5
# A model quote shorter than this is not evidence of anything.
MIN_QUOTE_WORDS = 3
# Passages shown when the answer is extractive.
EXTRACTIVE_PASSAGES = 2
EXTRACTIVE_NOTE = ("the model's answer cited nothing that could be checked against the "
                   "sources, so the best passages are shown instead (extractive)")

_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_QUOTE = re.compile(r'["“”„«»]([^"“”„«»]{3,})["“”„«»]')
_WORD = re.compile(r"\w+", re.UNICODE)


def build_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    sources = "\n\n".join(f"[{n}] {hit.location}\n{hit.chunk.text}"
                          for n, hit in enumerate(hits, start=1))
    user = f"Sources:\n\n{sources}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Citation:
    n: int  # source number, 1-based
    quote: str  # the chunk's own text for the matched span
    by: str  # "model": the model's quote checked; "overlap": the sentence's own words

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "quote": self.quote, "by": self.by}


@dataclass(frozen=True)
class Claim:
    """One kept answer sentence and what backs it."""

    text: str
    citations: list[Citation]

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "citations": [c.as_json() for c in self.citations]}


@dataclass
class Answer:
    question: str
    answer: str
    sources: list[Hit]
    cited: list[int] = field(default_factory=list)
    attributed: bool = False  # some markers were placed by code, not by the model
    backend: str | None = None
    tier: str | None = None
    model: str | None = None
    claims: list[Claim] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # dropped model sentences
    extractive: bool = False
    model_answer: str = ""  # what the model said, unfiltered
    note: str | None = None

    @property
    def verified(self) -> bool:
        """Every sentence of ``answer`` carries a citation checked against its chunk."""
        return bool(self.claims) and not self.extractive

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "sources": [{"n": n, **hit.as_json()} for n, hit in enumerate(self.sources, 1)],
            "cited": self.cited,
            "citations_attributed": self.attributed,
            "backend": self.backend,
            "tier": self.tier,
            "model": self.model,
            "verified": self.verified,
            "extractive": self.extractive,
            "claims": [c.as_json() for c in self.claims],
            "unverified": self.unverified,
            "model_answer": self.model_answer,
            "note": self.note,
        }


def finish(question: str, response: ChatResponse, hits: Sequence[Hit]) -> Answer:
    raw = response.text.strip()
    claims, dropped = check(raw, [h.chunk.text for h in hits])
    answer = Answer(question, "", list(hits), backend=response.backend, tier=response.tier,
                    model=response.model, model_answer=raw, unverified=dropped)
    if not claims:
        return _extractive(answer)
    answer.claims = claims
    answer.answer = " ".join(c.text for c in claims)
    answer.cited = list(dict.fromkeys(c.n for claim in claims for c in claim.citations))
    answer.attributed = any(c.by == "overlap" for claim in claims for c in claim.citations)
    if dropped:
        answer.note = (f"{len(dropped)} sentence(s) of the model's answer dropped: no "
                       "source contains what they cite")
    return answer


def _extractive(answer: Answer) -> Answer:
    best = answer.sources[:EXTRACTIVE_PASSAGES]
    answer.extractive = True
    answer.note = EXTRACTIVE_NOTE
    answer.cited = list(range(1, len(best) + 1))
    answer.answer = "\n\n".join(f"[{n}] {hit.location}\n{hit.chunk.text.strip()}"
                                for n, hit in enumerate(best, start=1))
    return answer


def check(text: str, chunks: Sequence[str]) -> tuple[list[Claim], list[str]]:
    """The sentences of ``text`` a chunk backs (with their citations), and the rest."""
    claims: list[Claim] = []
    dropped: list[str] = []
    indexed = [_words(c) for c in chunks]
    for sentence in (s.strip() for s in _SENTENCE.split(text)):
        if not sentence:
            continue
        citation = _cite(sentence, chunks, indexed)
        if citation is None:
            dropped.append(sentence)
            continue
        claims.append(Claim(_mark(sentence, citation.n), [citation]))
    return claims, dropped


def _cite(sentence: str, chunks: Sequence[str],
          indexed: Sequence[list[tuple[str, int, int]]]) -> Citation | None:
    """The best checked citation for one sentence: the model's quote in the source it
    names, then the sentence's own words in that source, then in any source."""
    named = [n for n in (int(m) for m in _MARKER.findall(sentence)) if 1 <= n <= len(chunks)]
    quotes = [q for q in _QUOTE.findall(sentence) if len(_WORD.findall(q)) >= MIN_QUOTE_WORDS]
    order = list(dict.fromkeys([*named, *range(1, len(chunks) + 1)]))
    for n in order:
        for quote in quotes:
            span = _find(_words(quote), indexed[n - 1], chunks[n - 1], whole=True)
            if span is not None:
                return Citation(n, span, "model")
    plain = _words(_MARKER.sub(" ", sentence))
    best: tuple[int, int, str] | None = None  # (words, source, span)
    for n in order:  # the source the model named wins a tie
        span = _find(plain, indexed[n - 1], chunks[n - 1], whole=False)
        if span is not None:
            length = len(_WORD.findall(span))
            if best is None or length > best[0]:
                best = (length, n, span)
    return None if best is None else Citation(best[1], best[2], "overlap")


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0).casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _find(needle: list[tuple[str, int, int]], hay: list[tuple[str, int, int]], text: str,
          *, whole: bool) -> str | None:
    """``text``'s span for the whole ``needle`` (a quote), or for the longest run of at
    least MIN_SPAN_WORDS words of it (a sentence)."""
    a, b = [w for w, _, _ in needle], [w for w, _, _ in hay]
    if not a or not b:
        return None
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(
        0, len(a), 0, len(b))
    if match.size < (len(a) if whole else MIN_SPAN_WORDS):
        return None
    return text[hay[match.b][1]:hay[match.b + match.size - 1][2]]


def _mark(sentence: str, n: int) -> str:
    """The sentence with only the checked marker ``[n]``: a marker the model placed on a
    source that does not back the sentence would be a citation nobody checked."""
    cleaned = _MARKER.sub(lambda m: m.group(0) if int(m.group(1)) == n else "", sentence)
    cleaned = re.sub(r"\s+([.!?,;:])", r"\1", re.sub(r"\s{2,}", " ", cleaned)).strip()
    if f"[{n}]" in cleaned:
        return cleaned
    if cleaned and cleaned[-1] in ".!?":
        return f"{cleaned[:-1]} [{n}]{cleaned[-1]}"
    return f"{cleaned} [{n}]"
