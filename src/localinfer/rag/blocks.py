"""What loaders produce and the chunker consumes: paragraphs that know where they came from."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LocalInferError


class DocumentError(LocalInferError):
    """A file could not be read as a document (unsupported, corrupt, encrypted...)."""

    exit_code = 2
    http_status = 422
    error_type = "invalid_request_error"
    code = "bad_document"


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM); anything else read as Latin-1 rather than refused."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@dataclass(frozen=True)
class Block:
    """One paragraph (or heading) of a document.

    ``start_line``/``end_line`` are 1-based lines of the source file; PDFs have no
    stable lines, so they carry ``page`` instead. ``section`` counts headings: the
    chunker never packs two sections into one chunk. ``heading`` is the path of
    headings in force ("Guide > Install"), kept so a chunk can be found by its context.
    """

    text: str
    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None
    section: int = 0
    heading: str = ""
    is_heading: bool = False


def paragraphs(lines: list[str], first_line: int = 1, *, section: int = 0, heading: str = "",
               page: int | None = None, numbered: bool = True) -> list[Block]:
    """Runs of non-blank lines as blocks."""
    blocks: list[Block] = []
    run: list[str] = []
    start = first_line
    for offset, line in enumerate([*lines, ""]):
        if line.strip():
            if not run:
                start = first_line + offset
            run.append(line.rstrip())
            continue
        if run:
            end = start + len(run) - 1
            blocks.append(Block("\n".join(run), start if numbered else None,
                                end if numbered else None, page, section, heading))
            run = []
    return blocks


class HeadingPath:
    """The stack of headings in force, by level."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self.section = 0

    def push(self, level: int, title: str) -> str:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title.strip()))
        self.section += 1
        return self.path

    @property
    def path(self) -> str:
        return " > ".join(title for _, title in self._stack if title)
