"""Blocks to chunks: sections never mix, paragraphs stay whole when they fit, and each
chunk starts with the tail of the one before it (overlap) so no sentence is only ever
seen cut in half.

Sizes are in characters: about 800 characters of English is about 200 tokens, inside
the embedder's 256-token window with room for the heading path in front.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from .blocks import Block

MAX_CHARS = 800
OVERLAP_CHARS = 120


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str
    start_line: int | None
    end_line: int | None
    page_start: int | None
    page_end: int | None

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading path gives a chunk its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(frozen=True)
class _Unit:
    """One line (or a piece of an over-long line): the smallest thing packed."""

    text: str
    first: int | None  # source lines this unit covers
    last: int | None
    page: int | None
    para_start: bool


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def chunk_blocks(blocks: Iterable[Block], *, max_chars: int = MAX_CHARS,
                 overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    packer = _Packer(max_chars, overlap)
    carried: list[list[_Unit]] = []  # heading-only sections wait for their content
    for _, group in groupby(blocks, key=lambda b: b.section):
        section = list(group)
        paras = [list(_units(b, max(max_chars - overlap, 1))) for b in section]
        if all(b.is_heading for b in section):
            carried.extend(paras)
            continue
        packer.section(carried + paras, section[-1].heading)
        carried = []
    if carried:
        packer.section(carried, "")
    return packer.chunks


def _units(block: Block, max_chars: int) -> Iterator[_Unit]:
    lines = block.text.splitlines()
    start, end = block.start_line, block.end_line
    # Lines map one to one unless the loader reflowed them (HTML collapses whitespace):
    # then every unit covers the block's whole range.
    exact = start is not None and end is not None and end - start + 1 == len(lines)
    first = True
    for offset, line in enumerate(lines):
        lo, hi = (start + offset, start + offset) if exact and start is not None else (start, end)
        for piece in _split_long(line, max_chars):
            yield _Unit(piece, lo, hi, block.page, first)
            first = False


def _split_long(line: str, limit: int) -> Iterator[str]:
    """A line longer than a chunk is cut at sentence ends, else at spaces, else hard."""
    while len(line) > limit:
        window = line[:limit]
        cut = max((m.end() for m in _SENTENCE_END.finditer(window)), default=0)
        if cut < limit // 2:
            cut = window.rfind(" ") + 1 or limit
        yield line[:cut].rstrip()
        line = line[cut:].lstrip()
    if line.strip():
        yield line


def _tail(text: str, limit: int) -> str:
    """The last whole sentences (or words) of ``text`` within ``limit`` characters."""
    if len(text) <= limit:
        return text
    window = text[-limit:]
    starts = [m.end() for m in _SENTENCE_END.finditer(window)]
    if starts:
        return window[starts[0]:]
    space = window.find(" ")
    return window[space + 1:] if space >= 0 else ""


def _join(units: list[_Unit]) -> str:
    out: list[str] = []
    for i, unit in enumerate(units):
        if i and unit.para_start:
            out.append("")
        out.append(unit.text)
    return "\n".join(out)


class _Packer:
    def __init__(self, max_chars: int, overlap: int) -> None:
        self.max_chars = max_chars
        self.overlap = overlap
        self.chunks: list[Chunk] = []
        self._units: list[_Unit] = []
        self._fresh = 0  # units in the current chunk that are not overlap
        self._heading = ""

    def _size(self, extra: list[_Unit]) -> int:
        return len(_join(self._units + extra))

    def section(self, paras: list[list[_Unit]], heading: str) -> None:
        self._heading = heading
        for para in paras:
            if self._fresh and self._size(para) > self.max_chars:
                self._emit(keep_overlap=True)
            if self._size(para) <= self.max_chars:
                self._add(para)
                continue
            for unit in para:  # a paragraph bigger than a chunk goes line by line
                if self._fresh and self._size([unit]) > self.max_chars:
                    self._emit(keep_overlap=True)
                self._add([unit])
        self._emit(keep_overlap=False)

    def _add(self, units: list[_Unit]) -> None:
        self._units.extend(units)
        self._fresh += len(units)

    def _emit(self, *, keep_overlap: bool) -> None:
        units = self._units
        if self._fresh:
            firsts = [u.first for u in units if u.first is not None]
            lasts = [u.last for u in units if u.last is not None]
            pages = [u.page for u in units if u.page is not None]
            self.chunks.append(Chunk(
                _join(units), self._heading,
                min(firsts) if firsts else None, max(lasts) if lasts else None,
                min(pages) if pages else None, max(pages) if pages else None,
            ))
        self._units, self._fresh = (self._overlap_of(units) if keep_overlap else []), 0

    def _overlap_of(self, units: list[_Unit]) -> list[_Unit]:
        kept: list[_Unit] = []
        budget = self.overlap
        for unit in reversed(units):
            if len(unit.text) + 1 > budget:
                tail = _tail(unit.text, budget)
                if tail:
                    kept.insert(0, _Unit(tail, unit.first, unit.last, unit.page, False))
                break
            kept.insert(0, unit)
            budget -= len(unit.text) + 1
        # Overlap continues the previous paragraph: no blank line before it.
        return [_Unit(u.text, u.first, u.last, u.page, False) if i == 0 else u
                for i, u in enumerate(kept)]
