"""Matrix cells where the operation does not apply to a backend, as data: each is shown
``n/a: reason`` (scripts/compat_matrix.py), never used for a failure. Each one's test
checks that the same row is really tested on another backend (✓ or an asserted refusal),
so an n/a never stands for an operation nobody tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.compat_matrix import declared

# The route manages localinfer's own assets and never reaches a chat backend, so it is
# the same whatever serves chat.
CACHE = "localinfer's own model cache, no chat backend involved (tested on scripted)"
NOT_APPLICABLE: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("ollama", "/api/pull"): (("embedded", "llama-server"), CACHE),
    ("ollama", "/api/delete"): (("embedded", "llama-server"), CACHE),
    ("ollama", "/api/pull unknown model"): (("embedded", "llama-server"), CACHE),
    ("openai", "tools (template without tools)"): (
        ("scripted",), "a scripted backend has no chat template"),
}


def _test(client: str, operation: str) -> Callable[[], None]:
    def test() -> None:
        backends = NOT_APPLICABLE[(client, operation)][0]
        tested = {b for c, o, b in declared()
                  if (c, o) == (client, operation) and b not in backends}
        assert tested, f"{client} {operation}: n/a everywhere it is declared, tested nowhere"
    return test


for (_client, _operation), (_backends, _reason) in NOT_APPLICABLE.items():
    _fn = _test(_client, _operation)
    for _backend in _backends:
        _fn = pytest.mark.compat(_client, _operation, _backend, na=_reason)(_fn)
    _slug = "".join(ch if ch.isalnum() else "_" for ch in f"{_client}_{_operation}").lower()
    globals()[f"test_not_applicable_{_slug}"] = _fn
