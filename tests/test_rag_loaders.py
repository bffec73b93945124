"""Loaders and chunking on the test corpus: what is read, what is dropped, and where
each chunk says it came from.

The corpus PDF is built by ``build_pdf`` below, a hand-written PDF writer (no PDF
library), so its content is known byte for byte. Regenerate it with
``python -m tests.test_rag_loaders``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localinfer.rag.blocks import DocumentError
from localinfer.rag.chunking import chunk_blocks
from localinfer.rag.loaders import FORMATS, iter_files, load
from tests.support.rag import CORPUS

PAGES = [
    [
        "Ridge Observatory Safety Manual",
        "",
        "This manual is for members who run the telescope alone.",
        "Read it before your first unsupervised night.",
    ],
    [
        "Weather limits",
        "",
        "The dome shutter is closed whenever the wind speed rises above",
        "forty kilometres per hour, or when relative humidity passes",
        "eighty-five percent, because dew ruins the mirror coating.",
    ],
    [
        "Night vision",
        "",
        "After dark only red torches are allowed inside the dome, so that",
        "everyone keeps their eyes adapted to the dark sky.",
        "The first aid kit hangs beside the door of the control room.",
    ],
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build_pdf(pages: list[list[str]]) -> bytes:
    objects: list[bytes] = []  # object n is objects[n - 1]
    font_id = 3
    page_ids = []
    contents = []
    for lines in pages:
        ops = ["BT", "/F1 12 Tf", "16 TL", "72 720 Td"]
        ops += [f"({_escape(line)}) Tj T*" for line in lines]
        ops.append("ET")
        contents.append("\n".join(ops).encode("latin-1"))
    first_page = 4
    for i in range(len(pages)):
        page_ids.append(first_page + 2 * i)
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    for page_id, stream in zip(page_ids, contents, strict=True):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {page_id + 1} 0 R >>"
            .encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)



def _load(name: str) -> tuple[str, list]:  # type: ignore[type-arg]
    path = CORPUS / name
    return load(path, path.read_bytes())


def test_corpus_pdf_is_what_the_builder_writes() -> None:
    assert (CORPUS / "observatory-manual.pdf").read_bytes() == build_pdf(PAGES)


def test_every_supported_format_is_in_the_corpus() -> None:
    kinds = {load(p, p.read_bytes())[0] for p in iter_files([CORPUS])}
    assert kinds == {f.kind for f in FORMATS.values()}


def test_html_keeps_visible_text_only() -> None:
    kind, blocks = _load("recipes.html")
    text = "\n".join(b.text for b in blocks)
    assert kind == "html"
    for decoy in ("SCRIPT_DECOY_TOKEN", "STYLE_DECOY_TOKEN", "NOSCRIPT_DECOY_TOKEN",
                  "hunter2", "font-family"):
        assert decoy not in text
    assert "equal weights of rye flour" in text
    assert "250 °C" in text  # entities decoded


def test_html_blocks_point_at_their_source_lines() -> None:
    _, blocks = _load("recipes.html")
    source = (CORPUS / "recipes.html").read_text().splitlines()
    for block in blocks:
        assert block.start_line is not None and block.end_line is not None
        span = " ".join(source[block.start_line - 1:block.end_line])
        first_word = block.text.split()[0]
        assert first_word in span, (block, span)


def test_html_with_an_unclosed_head_keeps_its_body(tmp_path: Path) -> None:
    page = tmp_path / "sloppy.html"
    page.write_text("<html><head><title>T</title><style>p {}</style>\n"
                    "<body><p>Visible words.</p><script>hidden()</script></body>")
    _, blocks = load(page, page.read_bytes())
    assert [b.text for b in blocks] == ["Visible words."]


def test_html_headings_make_sections() -> None:
    _, blocks = _load("recipes.html")
    starter = next(b for b in blocks if "rye flour" in b.text)
    assert starter.heading == "Bakery Notes > Sourdough starter"


def test_markdown_headings_nest_and_fences_are_not_headings() -> None:
    _, blocks = _load("handbook.md")
    headings = [b.heading for b in blocks if b.is_heading]
    assert "Northwind Studio Handbook > Expenses > Equipment" in headings
    assert "Northwind Studio Handbook > Security" in headings
    assert not any("code fence" in h for h in headings)
    fence = next(b for b in blocks if "make coffee" in b.text)
    assert "this is a code fence" in fence.text  # the fence stayed one block
    assert fence.heading.endswith("Kitchen")


def test_text_lines_are_exact() -> None:
    _, blocks = _load("garden.txt")
    source = (CORPUS / "garden.txt").read_text().splitlines()
    for block in blocks:
        assert block.start_line is not None and block.end_line is not None
        assert block.text == "\n".join(source[block.start_line - 1:block.end_line])


def test_pdf_blocks_carry_pages() -> None:
    kind, blocks = _load("observatory-manual.pdf")
    assert kind == "pdf"
    wind = next(b for b in blocks if "wind speed" in b.text)
    torches = next(b for b in blocks if "red torches" in b.text)
    assert (wind.page, torches.page) == (2, 3)
    assert wind.start_line is None


def test_code_definitions_start_sections() -> None:
    kind, blocks = _load("billing.py")
    assert kind == "code"
    fee = next(b for b in blocks if "GRACE_DAYS\n" in b.text or "overdue =" in b.text)
    assert fee.heading.startswith("def late_fee_cents")


def test_unknown_binary_file_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "image.bin"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    with pytest.raises(DocumentError, match="not a supported document type"):
        load(blob, blob.read_bytes())


def test_unknown_suffix_that_is_text_loads_as_text(tmp_path: Path) -> None:
    notes = tmp_path / "NOTES"
    notes.write_text("first paragraph\n\nsecond paragraph\n")
    kind, blocks = load(notes, notes.read_bytes())
    assert kind == "text" and [b.text for b in blocks] == ["first paragraph", "second paragraph"]


def test_broken_pdf_is_a_document_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(DocumentError):
        load(bad, bad.read_bytes())


def test_walk_skips_hidden_and_dependency_folders(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.md").write_text("hidden")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "readme.md").write_text("dependency")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide")
    (tmp_path / "docs" / "photo.jpg").write_bytes(b"\xff\xd8")
    assert [p.name for p in iter_files([tmp_path])] == ["guide.md"]


# chunking ----------------------------------------------------------------------------

def _long_markdown() -> bytes:
    paras = [f"Paragraph {i} talks about topic {i}. " * 6 for i in range(12)]
    return ("# Title\n\n" + "\n\n".join(paras[:6]) + "\n\n## Second\n\n"
            + "\n\n".join(paras[6:]) + "\n").encode()


def test_chunks_respect_size_and_sections(tmp_path: Path) -> None:
    doc = tmp_path / "long.md"
    doc.write_bytes(_long_markdown())
    _, blocks = load(doc, doc.read_bytes())
    chunks = chunk_blocks(blocks, max_chars=500, overlap=100)
    assert all(len(c.text) <= 500 for c in chunks)
    assert len({c.heading for c in chunks}) == 2
    for c in chunks:  # no chunk mixes the two sections
        assert not ("topic 5." in c.text and "topic 6." in c.text)


def test_chunks_overlap_and_cover_every_line(tmp_path: Path) -> None:
    doc = tmp_path / "long.md"
    doc.write_bytes(_long_markdown())
    source = doc.read_text().splitlines()
    _, blocks = load(doc, doc.read_bytes())
    chunks = chunk_blocks(blocks, max_chars=500, overlap=100)
    covered: set[int] = set()
    for c in chunks:
        assert c.start_line is not None and c.end_line is not None
        covered.update(range(c.start_line, c.end_line + 1))
        # Every line of the chunk's text comes from inside its line range.
        window = "\n".join(source[c.start_line - 1:c.end_line])
        assert all(part in window for part in c.text.split("\n") if part)
    content = {i + 1 for i, line in enumerate(source) if line.strip()}
    assert content <= covered
    same_section = [(a, b) for a, b in itertools.pairwise(chunks) if a.heading == b.heading]
    assert same_section
    for a, b in same_section:  # the next chunk starts with the tail of the one before
        assert b.text.split("\n")[0][:40] in a.text


def test_an_overlong_line_is_split_at_sentences() -> None:
    from localinfer.rag.blocks import Block

    line = " ".join(f"Sentence number {i} ends here." for i in range(100))
    chunks = chunk_blocks([Block(line, 1, 1)], max_chars=300, overlap=60)
    assert len(chunks) > 5
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(c.text.rstrip().endswith(".") for c in chunks[:-1])
    assert all((c.start_line, c.end_line) == (1, 1) for c in chunks)


def test_pdf_chunks_name_single_pages() -> None:
    _, blocks = _load("observatory-manual.pdf")
    chunks = chunk_blocks(blocks)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2), (3, 3)]


if __name__ == "__main__":
    target = CORPUS / "observatory-manual.pdf"
    target.write_bytes(build_pdf(PAGES))
    print(target)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="abc xyz.#`", min_size=1, max_size=300),
                         min_size=1, max_size=4), min_size=1, max_size=12),
       st.integers(min_value=120, max_value=900))
def test_chunking_never_loses_a_line_nor_overflows(paragraphs: list[list[str]],
                                                   max_chars: int) -> None:
    from localinfer.rag.loaders import markdown_blocks

    text = "\n\n".join("\n".join(lines) for lines in paragraphs)
    blocks = markdown_blocks(text.encode())
    chunks = chunk_blocks(blocks, max_chars=max_chars, overlap=max_chars // 6)
    assert all(len(c.text) <= max_chars for c in chunks)
    covered: set[int] = set()
    for c in chunks:
        assert c.start_line is not None and c.end_line is not None
        covered.update(range(c.start_line, c.end_line + 1))
    source = text.splitlines()
    wanted = {i + 1 for i, line in enumerate(source) if line.strip()}
    assert wanted <= covered
    # Every word survives whole, unless it alone is longer than a line may be (then it
    # is cut, by design).
    limit = max_chars - max_chars // 6
    words = {w for w in text.split() if len(w) < limit // 2}
    assert words <= set(" ".join(c.text for c in chunks).split())


FRAGMENTS = ["<p>", "</p>", "<div>", "</div>", "<h2>", "</h2>", "<br>", "<li>", "text",
             "more words", "&amp;", "<b>", "</b>", "<head>", "</head>", "<body>", "</body>",
             "<script>SECRET()</script>", "<style>.SECRET{}</style>",
             "<noscript>SECRET</noscript>", "<template><p>SECRET</p></template>",
             "<!-- SECRET comment -->", "\n", "<img src=x>"]
# Stray markup changes what the next fragment means (a browser shows "</<script>x" as
# a bogus comment then the text x), so with these only robustness is checked.
STRAY = ["<", ">", "</", "<!", "&", "<p", "\0"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_html_never_shows_hidden_content(parts: list[str]) -> None:
    from localinfer.rag.html_text import html_blocks

    blocks = html_blocks("".join(parts).encode())
    assert not any("SECRET" in b.text for b in blocks)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS + STRAY), max_size=40))
def test_html_with_stray_markup_still_loads(parts: list[str]) -> None:
    from localinfer.rag.html_text import html_blocks

    for block in html_blocks("".join(parts).encode()):
        assert block.text.strip()
        assert block.start_line is not None and block.end_line is not None
        assert block.start_line <= block.end_line
