"""Text of a PDF, page by page (pypdf). Blocks carry the 1-based page, not lines:
a PDF has no stable line numbering of its own."""

from __future__ import annotations

import io
import logging

from .blocks import Block, DocumentError, paragraphs


def pdf_blocks(data: bytes) -> list[Block]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:
        raise DocumentError("reading PDFs needs pypdf: pip install 'localinfer[rag]'") from exc
    # pypdf logs every recoverable oddity of a malformed file; the index reports its own.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("PDF is encrypted with a password")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            # Each page is a section: a citation then names one page, not a range.
            blocks.extend(paragraphs(text.splitlines(), page=number, section=number,
                                     numbered=False))
        return blocks
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"cannot read PDF: {exc}") from exc
