"""Visible text of an HTML page, as blocks with source line numbers.

Script, style and other never-rendered elements are dropped whole; block-level tags end
a paragraph; h1-h6 start a section. The stdlib parser is lenient with broken markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .blocks import Block, HeadingPath, decode

# Elements whose content a browser never shows as text.
HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "math", "head", "iframe",
                    "object", "canvas", "select", "button"})
# Elements that end the paragraph before them (and their own at their end).
BREAKS = frozenset({
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "li", "ul",
    "ol", "dl", "dt", "dd", "table", "tr", "td", "th", "thead", "tbody", "blockquote", "pre",
    "figure", "figcaption", "form", "fieldset", "br", "hr", "address", "details", "summary",
    "h1", "h2", "h3", "h4", "h5", "h6", "title", "body", "html",
})
HEADINGS = {f"h{n}": n for n in range(1, 7)}
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                  "source", "track", "wbr", "param"})
_SPACE = re.compile(r"\s+")


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.path = HeadingPath()
        self._hidden: list[str] = []  # open hidden elements (their content is skipped)
        self._title = ""
        self._in_title = False
        self._heading_level: int | None = None
        self._parts: list[str] = []
        self._start: int | None = None
        self._end = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag == "body":  # an unclosed <head> (or anything else) ends where the body begins
            self._hidden.clear()
        if self._hidden or tag in HIDDEN:
            if tag not in VOID:
                self._hidden.append(tag)
            return
        if tag in BREAKS:
            self._flush()
        if tag in HEADINGS:
            self._heading_level = HEADINGS[tag]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._hidden and tag in BREAKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._hidden:
            if tag in self._hidden:  # close up to the matching open element
                while self._hidden and self._hidden.pop() != tag:
                    pass
            return
        if tag in BREAKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title += data
            return
        if self._hidden or not data.strip():
            return
        line = self.getpos()[0]
        if self._start is None:
            leading = data[:len(data) - len(data.lstrip())]
            self._start = line + leading.count("\n")
        self._end = line + data.rstrip().count("\n")
        self._parts.append(data)

    def _flush(self) -> None:
        text = _SPACE.sub(" ", "".join(self._parts)).strip()
        if text and self._start is not None:
            heading = self.path.path
            is_heading = self._heading_level is not None
            if is_heading:
                heading = self.path.push(self._heading_level or 1, text)
            self.blocks.append(Block(text, self._start, max(self._start, self._end), None,
                                     self.path.section, heading, is_heading))
        self._heading_level = None
        self._parts = []
        self._start = None

    def finish(self) -> list[Block]:
        self.close()
        self._flush()
        title = _SPACE.sub(" ", self._title).strip()
        if not title:
            return self.blocks
        # The page title names the page in every result, like a top-level heading.
        return [Block(b.text, b.start_line, b.end_line, b.page, b.section,
                      _under(title, b.heading), b.is_heading) for b in self.blocks]


def _under(title: str, heading: str) -> str:
    if not heading:
        return title
    return heading if heading.startswith(title) else f"{title} > {heading}"


def html_blocks(data: bytes) -> list[Block]:
    parser = _VisibleText()
    parser.feed(decode(data))
    return parser.finish()
