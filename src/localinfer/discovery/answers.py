"""What a server answered to the probes, and small composable tests over those answers.

A fingerprint row is built from ``Check`` s (does this answer look like kind X?) and
``Reader`` s (pull a version or a model list out of the answers). Each knows which
``Probe`` s it needs, so the sweep can fetch exactly the union of them and nothing more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Enough for a model list of a few hundred entries; a probe never reads more.
DEFAULT_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Probe:
    """One GET the sweep may send. ``max_bytes`` caps what is read of the body, so a
    probe of ``/`` on a server with a large web UI reads a few hundred bytes, not megabytes."""

    path: str
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class Answer:
    """A server's answer to one probe: status, headers (lower-cased names), capped body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @cached_property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @cached_property
    def data(self) -> Any:
        """The parsed JSON body, or None when it is not (complete) JSON."""
        if self.truncated or not self.ok:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def obj(self) -> dict[str, Any]:
        """The JSON body if it is an object, else an empty dict."""
        return self.data if isinstance(self.data, dict) else {}

    def items(self, key: str = "data") -> list[dict[str, Any]]:
        """The objects in a JSON list under ``key`` (OpenAI's ``data``, Ollama's ``models``)."""
        value = self.obj().get(key)
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


Answers = Mapping[str, Answer]
_MISSING = Answer(status=0, headers={}, body=b"")


def answer(answers: Answers, path: str) -> Answer:
    """The answer for ``path``, or an empty failed one when the probe got none."""
    return answers.get(path, _MISSING)


def merge_probes(*groups: Iterable[Probe]) -> frozenset[Probe]:
    """Union of probes, one per path, keeping the largest byte cap asked for."""
    biggest: dict[str, int] = {}
    for group in groups:
        for probe in group:
            biggest[probe.path] = max(biggest.get(probe.path, 0), probe.max_bytes)
    return frozenset(Probe(path, size) for path, size in biggest.items())


@dataclass(frozen=True)
class Check:
    """A yes/no test over answers. Combine with ``|`` and ``&``."""

    probes: frozenset[Probe]
    test: Callable[[Answers], bool] = field(compare=False)

    def __call__(self, answers: Answers) -> bool:
        return bool(self.test(answers))

    def __or__(self, other: Check) -> Check:
        return Check(merge_probes(self.probes, other.probes),
                     lambda a: self(a) or other(a))

    def __and__(self, other: Check) -> Check:
        return Check(merge_probes(self.probes, other.probes),
                     lambda a: self(a) and other(a))


@dataclass(frozen=True)
class Reader(Generic[T]):
    """Pulls a value (a version, a model list) out of answers."""

    probes: frozenset[Probe]
    read: Callable[[Answers], T] = field(compare=False)

    def __call__(self, answers: Answers) -> T:
        return self.read(answers)


def _on(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> frozenset[Probe]:
    return frozenset({Probe(path, max_bytes)})


# --- checks -------------------------------------------------------------------------------

def status_ok(path: str) -> Check:
    return Check(_on(path, 64), lambda a: answer(a, path).ok)


def json_is(path: str, key: str, value: object) -> Check:
    return Check(_on(path), lambda a: answer(a, path).obj().get(key) == value)


def json_has(path: str, *keys: str) -> Check:
    """The JSON object at ``path`` has every one of ``keys``."""
    return Check(_on(path), lambda a: all(k in answer(a, path).obj() for k in keys))


def json_has_any(path: str, *keys: str) -> Check:
    return Check(_on(path), lambda a: any(k in answer(a, path).obj() for k in keys))


def json_str(path: str, key: str) -> Check:
    """The JSON object at ``path`` has a non-empty string under ``key``."""
    def test(a: Answers) -> bool:
        value = answer(a, path).obj().get(key)
        return isinstance(value, str) and bool(value)
    return Check(_on(path), test)


def owned_by(owner: str, path: str = "/v1/models") -> Check:
    """Some model in an OpenAI-style list says ``owned_by: owner``."""
    return Check(_on(path),
                 lambda a: any(m.get("owned_by") == owner for m in answer(a, path).items()))


def openai_list(path: str = "/v1/models") -> Check:
    """``path`` answers an OpenAI-style model list (a JSON object with a ``data`` list)."""
    return Check(_on(path), lambda a: isinstance(answer(a, path).obj().get("data"), list))


def items_have(path: str, list_key: str, *keys: str) -> Check:
    """Some object in the JSON list under ``list_key`` at ``path`` has every one of ``keys``."""
    return Check(_on(path), lambda a: any(all(k in item for k in keys)
                                          for item in answer(a, path).items(list_key)))


def header_is(path: str, name: str, value: str) -> Check:
    return Check(_on(path), lambda a: answer(a, path).headers.get(name, "").strip() == value)


def header_starts(path: str, name: str, prefix: str) -> Check:
    return Check(_on(path),
                 lambda a: answer(a, path).headers.get(name, "").lower().startswith(prefix))


def text_starts(path: str, prefix: str, max_bytes: int = 256) -> Check:
    return Check(_on(path, max_bytes),
                 lambda a: answer(a, path).ok and answer(a, path).text.startswith(prefix))


def text_matches(path: str, pattern: str, max_bytes: int = 1024) -> Check:
    """The first ``max_bytes`` of the body match ``pattern`` (for large JSON documents
    whose identifying field comes first, such as an OpenAPI ``info.title``)."""
    regex = re.compile(pattern)
    return Check(_on(path, max_bytes),
                 lambda a: answer(a, path).ok and regex.search(answer(a, path).text) is not None)


# --- readers ------------------------------------------------------------------------------

def json_text(path: str, key: str) -> Reader[str | None]:
    def read(a: Answers) -> str | None:
        value = answer(a, path).obj().get(key)
        return str(value) if isinstance(value, (str, int, float)) and str(value) else None
    return Reader(_on(path), read)


def header_version(path: str, name: str, product: str) -> Reader[str | None]:
    """``Server: product/1.2.3`` → ``1.2.3``."""
    def read(a: Answers) -> str | None:
        value = answer(a, path).headers.get(name, "")
        head, _, version = value.partition("/")
        return version.split()[0] if head.lower() == product and version else None
    return Reader(_on(path), read)


NO_VERSION: Reader[str | None] = Reader(frozenset(), lambda a: None)
