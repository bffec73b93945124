"""Answer a question from retrieved chunks, with numbered citations.

The prompt numbers the sources and asks for ``[n]`` markers. Small local models often
forget them, so the answer is checked: markers that point nowhere are removed, and if
none is left, each answer sentence is attributed to the source it is closest to in
embedding space (when that closeness is clear), so every answer still points to where
it came from. Which markers were added that way is reported, not hidden.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.onnx.embedder import Embedder, Vectors
from ..types import ChatResponse
from .search import Hit

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. "
    "After each statement, cite the source it comes from with its number in square "
    "brackets, like [1]. If the sources do not contain the answer, say that you do not know."
)
# Below this cosine an answer sentence is not attributed to any source.
ATTRIBUTION_THRESHOLD = 0.45
_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def build_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    sources = "\n\n".join(f"[{n}] {hit.location}\n{hit.chunk.text}"
                          for n, hit in enumerate(hits, start=1))
    user = f"Sources:\n\n{sources}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


@dataclass
class Answer:
    question: str
    answer: str
    sources: list[Hit]
    cited: list[int] = field(default_factory=list)
    attributed: bool = False  # markers were added by similarity, not by the model
    backend: str | None = None
    tier: str | None = None
    model: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "sources": [{"n": n, **hit.as_json()} for n, hit in enumerate(self.sources, 1)],
            "cited": self.cited,
            "citations_attributed": self.attributed,
            "backend": self.backend,
            "tier": self.tier,
            "model": self.model,
        }


def finish(question: str, response: ChatResponse, hits: Sequence[Hit],
           source_vectors: Vectors, embedder: Embedder) -> Answer:
    text, cited = clean_markers(response.text.strip(), len(hits))
    attributed = False
    if not cited and hits and text:
        text, cited = attribute(text, source_vectors, embedder)
        attributed = bool(cited)
    return Answer(question, text, list(hits), cited, attributed, response.backend,
                  response.tier, response.model)


def clean_markers(text: str, count: int) -> tuple[str, list[int]]:
    """Drop ``[n]`` markers that point past the sources; list the valid ones, in order."""
    cited: list[int] = []

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if 1 <= n <= count:
            if n not in cited:
                cited.append(n)
            return match.group(0)
        return ""

    return _MARKER.sub(keep, text), cited


def attribute(text: str, source_vectors: Vectors, embedder: Embedder
              ) -> tuple[str, list[int]]:
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    if not sentences or not len(source_vectors):
        return text, []
    sims = embedder.embed(sentences) @ source_vectors.T
    cited: list[int] = []
    out: list[str] = []
    for sentence, row in zip(sentences, sims, strict=True):
        best = int(np.argmax(row))
        if row[best] >= ATTRIBUTION_THRESHOLD:
            n = best + 1
            cited += [] if n in cited else [n]
            sentence = _append_marker(sentence, n)
        out.append(sentence)
    return " ".join(out), cited


def _append_marker(sentence: str, n: int) -> str:
    stripped = sentence.rstrip()
    if stripped and stripped[-1] in ".!?":
        return f"{stripped[:-1]} [{n}]{stripped[-1]}"
    return f"{stripped} [{n}]"
