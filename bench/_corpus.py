"""Texts every machine has, for the benchmarks: paragraphs of the Python standard
library's own source (docstrings and comments), picked the same way by every script so
their figures stay comparable."""

from __future__ import annotations

import sysconfig
from pathlib import Path

SKIP_PREFIXES = ("import ", "from ", "def ", "class ", "@")


def stdlib_paragraphs(count: int) -> list[str]:
    """Up to ``count`` whitespace-normalised paragraphs of 40 to 1500 characters that are
    not code headers, in a fixed order (sorted file names)."""
    texts: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        for para in path.read_text(errors="ignore").split("\n\n"):
            text = " ".join(para.split())
            if 40 <= len(text) <= 1500 and not text.startswith(SKIP_PREFIXES):
                texts.append(text)
            if len(texts) >= count:
                return texts
    return texts
