"""Turn files into blocks. Which loader reads which file is a table, not a branch chain.

Plain text and source code split at blank lines; Markdown also at headings (outside
code fences); HTML keeps visible text only; PDF reads page by page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..files import problem, shown
from .blocks import Block, DocumentError, HeadingPath, decode, paragraphs
from .html_text import html_blocks
from .pdf_text import pdf_blocks

Loader = Callable[[bytes], list[Block]]

MAX_FILE_BYTES = 64 * 1024 * 1024
# Folders a walk never enters: tool state and dependencies, not the user's documents.
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "target"})


def text_blocks(data: bytes) -> list[Block]:
    return paragraphs(decode(data).splitlines())


_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_blocks(data: bytes) -> list[Block]:
    lines = decode(data).splitlines()
    path = HeadingPath()
    blocks: list[Block] = []
    body: list[str] = []
    body_start = 1
    fence: str | None = None

    def flush() -> None:
        nonlocal body
        blocks.extend(_fenced_paragraphs(body, body_start, path.section, path.path))
        body = []

    for number, line in enumerate(lines, start=1):
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] \
                    and len(fence_match.group(1)) >= len(fence):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif (atx := _ATX.match(line)) is not None:
            flush()
            heading = path.push(len(atx.group(1)), atx.group(2))
            blocks.append(Block(line.strip(), number, number, None, path.section, heading, True))
            body_start = number + 1
            continue
        elif (_SETEXT.match(line) and body and body[-1].strip()
              and (len(body) == 1 or not body[-2].strip())):
            title = body.pop()
            flush()
            heading = path.push(1 if line.strip()[0] == "=" else 2, title)
            blocks.append(Block(f"{title.strip()}\n{line.strip()}", number - 1, number, None,
                                path.section, heading, True))
            body_start = number + 1
            continue
        if not body:
            body_start = number
        body.append(line)
    flush()
    return blocks


def _fenced_paragraphs(lines: list[str], first: int, section: int, heading: str) -> list[Block]:
    """Paragraphs, except that a fenced code block stays whole across its blank lines."""
    merged: list[str] = []
    fence: str | None = None
    for line in lines:
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and match.group(1)[0] == fence[0]:
            fence = None
        # A blank line inside a fence is kept as a space so the fence stays one paragraph.
        merged.append(" " if fence is not None and not line.strip() else line)
    return paragraphs(merged, first, section=section, heading=heading)


# A definition at column 0 starts a new section of a source file.
_DEFINITION = re.compile(
    r"^(?:export\s+|pub(?:\([a-z]+\))?\s+|public\s+|private\s+|protected\s+|static\s+|async\s+)*"
    r"(?:def|class|function|func|fn|struct|enum|trait|impl|interface|type|module|"
    r"sub|proc|object)\b"
)


def code_blocks(data: bytes) -> list[Block]:
    lines = decode(data).splitlines()
    out: list[Block] = []
    section, heading = 0, ""
    for block in paragraphs(lines):
        starts = next((ln for ln in block.text.splitlines() if _DEFINITION.match(ln)), None)
        if starts is not None:
            section += 1
            heading = starts.strip()[:80]
        out.append(Block(block.text, block.start_line, block.end_line, None, section, heading))
    return out


@dataclass(frozen=True)
class Format:
    kind: str
    load: Loader


_TEXT = Format("text", text_blocks)
_MARKDOWN = Format("markdown", markdown_blocks)
_HTML = Format("html", html_blocks)
_PDF = Format("pdf", pdf_blocks)
_CODE = Format("code", code_blocks)

FORMATS: dict[str, Format] = {
    **dict.fromkeys((".txt", ".text", ".rst", ".org", ".adoc", ".csv", ".tsv", ".log"), _TEXT),
    **dict.fromkeys((".md", ".markdown", ".mdx"), _MARKDOWN),
    **dict.fromkeys((".html", ".htm", ".xhtml"), _HTML),
    ".pdf": _PDF,
    **dict.fromkeys((
        ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".go", ".rs", ".c", ".h",
        ".cc", ".cpp", ".hpp", ".cxx", ".java", ".kt", ".scala", ".swift", ".rb", ".php",
        ".cs", ".lua", ".pl", ".r", ".jl", ".sh", ".bash", ".zsh", ".sql", ".toml", ".yaml",
        ".yml", ".ini", ".cfg", ".json", ".css", ".scss", ".vue", ".svelte", ".ex", ".exs",
        ".hs", ".ml", ".clj", ".el", ".vim", ".zig", ".nim", ".dart",
    ), _CODE),
}


def format_for(path: Path, head: bytes | None = None) -> Format | None:
    """The loader for a file: by suffix, or plain text if an unknown file looks like text."""
    found = FORMATS.get(path.suffix.lower())
    if found is not None or head is None:
        return found
    if b"\0" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a cut multi-byte character at the end is fine
            return None
    return _TEXT


def load(path: Path, data: bytes) -> tuple[str, list[Block]]:
    """(kind, blocks) of one file's bytes."""
    head = data[:8192]
    fmt = format_for(path, head)
    if fmt is None:
        raise DocumentError(f"{path}: not a supported document type")
    if fmt is not _PDF and b"\0" in head:
        raise DocumentError(f"{path}: binary content in a {fmt.kind} file")
    return fmt.kind, fmt.load(data)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files under ``paths``: named files as given, folders walked for known formats
    (hidden entries and dependency folders skipped, symlinked folders not followed)."""
    for root in paths:
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise DocumentError(f"{shown(root)}: {problem(root) or 'not a file or folder'}")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
            for name in sorted(files):
                path = Path(folder) / name
                if not name.startswith(".") and path.suffix.lower() in FORMATS:
                    yield path
