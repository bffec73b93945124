"""The library API of the document index: add, sync, list, remove, stats, search, ask.

Ingest reads, hashes and chunks files, embeds chunks of several files in one batch
(small files alone would make tiny, slow batches), then writes each document in its
own transaction. Nothing here talks to the network except ``ask``, which goes through
the router with ``sensitive=True``: local tiers only.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ..backends.onnx.embedder import Embedder, LazyEmbedder
from ..errors import ConsentRequired, NoBackend, SensitiveDataBlocked, UsageError
from ..files import problem, safe_resolve, shown, undecodable_name
from ..settings import Settings
from ..types import ChatResponse
from .answer_model import answering_settings
from .ask import Answer, build_messages, finish
from .blocks import DocumentError
from .chunking import Chunk, chunk_blocks
from .loaders import MAX_FILE_BYTES, iter_files, load
from .search import Hit, hybrid_search
from .server_embedder import PREFIX as SERVER_PREFIX
from .server_embedder import ServerEmbedder
from .store import DocumentRow, Store

if TYPE_CHECKING:
    from ..client import AsyncClient, Client

DEFAULT_COLLECTION = "default"
EMBED_BATCH_CHUNKS = 64

# (files done, files total, current path)
ProgressFn = Callable[[int, int, str], None]


class SyncChat(Protocol):
    def chat(self, *, messages: Any, model: str | None = ..., sensitive: bool = ...,
             **options: Any) -> ChatResponse: ...


class AsyncChat(Protocol):
    async def chat(self, *, messages: Any, model: str | None = ..., sensitive: bool = ...,
                   **options: Any) -> ChatResponse: ...


NO_LOCAL_TIER = (
    "no local chat model can answer, and `ask` never sends documents off this machine: "
    "start a local server (e.g. `ollama serve`) or enable the embedded engine "
    "(unset LOCALINFER_EMBEDDED=off)"
)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "removed": self.removed, "chunks": self.chunks,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


@dataclass
class _Prepared:
    path: str
    kind: str
    sha256: str
    size: int
    mtime: float
    chunks: list[Chunk]
    existed: bool


def _norm(path: Path | str) -> str:
    return str(safe_resolve(Path(path)))


def _valid_collection(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise UsageError("a collection name is 1 to 100 characters")
    return name


class Index:
    """A local document index.

    >>> index = Index()
    >>> index.add(["~/notes"], collection="notes")
    >>> for hit in index.search("when is the boiler serviced?", k=3):
    ...     print(hit.location, hit.score)
    """

    def __init__(self, settings: Settings | None = None, *, path: Path | None = None,
                 embedder: Embedder | None = None, embed_model: str | None = None) -> None:
        """``embed_model``: a local server's embedding model instead of the built-in one;
        an index remembers its embedder, so later opens need not name it again."""
        self.settings = settings or Settings()
        self.path = path or self.settings.index_path or self.settings.home / "index" / "index.db"
        model = embed_model or _recorded_server_model(self.path)
        if embedder is None and model:
            embedder = ServerEmbedder(self.settings, model)
        self.embedder: Embedder = embedder or LazyEmbedder(self.settings)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.path, embedder_id=self.embedder.id, dim=self.embedder.dim)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if isinstance(self.embedder, ServerEmbedder):
            self.embedder.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing ---------------------------------------------------------------------

    def add(self, paths: Iterable[Path | str], *, collection: str = DEFAULT_COLLECTION,
            progress: ProgressFn | None = None) -> IngestReport:
        """Index files and folders. Unchanged files (same content hash) are skipped,
        changed ones re-indexed in place; nothing is ever stored twice."""
        collection = _valid_collection(collection)
        roots = [Path(_norm(p)) for p in paths]
        if not roots:
            raise UsageError("nothing to add: give at least one file or folder")
        for root in roots:
            why = None if root.is_dir() else problem(root)
            if why is not None:
                raise DocumentError(f"{shown(root)}: {why}")
        for root in roots:
            self.store.add_root(collection, str(root))
        report = self._ingest(list(iter_files(roots)), collection, progress, IngestReport())
        self.store.sync_vectors()  # the next open maps the vectors instead of reading them
        return report

    def sync(self, *, collection: str | None = None,
             progress: ProgressFn | None = None) -> IngestReport:
        """Bring the index in line with the files: drop deleted ones, re-index changed
        ones, pick up new files under the folders that were added."""
        report = IngestReport()
        for name in [collection] if collection else self.store.collections():
            roots = [Path(p) for _, p in self.store.roots(name)]
            for doc in self.store.documents(name):
                if not Path(doc.path).is_file():
                    self.store.remove_document(doc.id)
                    report.removed.append(doc.path)
            live = [r for r in roots if r.exists()]
            for gone in set(roots) - set(live):
                self.store.remove_root(name, str(gone))
            self._ingest(list(iter_files(live)), name, progress, report)
        self.store.sync_vectors()
        return report

    def remove(self, paths: Iterable[Path | str] = (), *,
               collection: str | None = None) -> list[str]:
        """Forget files, folders (everything under them), or a whole collection."""
        targets = [_norm(p) for p in paths]
        if not targets and not collection:
            raise UsageError("give paths to remove, or a collection to drop")
        removed: list[str] = []
        for doc in self.store.documents(collection):
            if not targets or any(_under(doc.path, t) for t in targets):
                self.store.remove_document(doc.id)
                removed.append(doc.path)
        for name, root in self.store.roots(collection):
            if not targets or any(_under(root, t) for t in targets):
                self.store.remove_root(name, root)
        self.store.sync_vectors()
        return removed

    def _ingest(self, files: Sequence[Path], collection: str, progress: ProgressFn | None,
                report: IngestReport) -> IngestReport:
        pending: list[_Prepared] = []
        for done, path in enumerate(files, start=1):
            prepared = self._prepare(path, collection, report)
            if prepared is not None:
                pending.append(prepared)
            if sum(len(p.chunks) for p in pending) >= EMBED_BATCH_CHUNKS:
                self._write(pending, collection, report)
                pending = []
            if progress:
                progress(done, len(files), str(path))
        self._write(pending, collection, report)
        return report

    def _prepare(self, path: Path, collection: str, report: IngestReport) -> _Prepared | None:
        name = _norm(path)
        if undecodable_name(path):
            # SQLite and the terminal need text: skip this one file, index the rest.
            report.skipped.append((shown(name), "file name is not valid UTF-8; rename it"))
            return None
        why = problem(path)
        if why is not None:  # a FIFO or device would block or never end
            report.skipped.append((name, why))
            return None
        try:
            stat = path.stat()
            if stat.st_size > MAX_FILE_BYTES:
                raise DocumentError(f"larger than {MAX_FILE_BYTES >> 20} MiB")
            data = path.read_bytes()
        except (OSError, DocumentError) as exc:
            report.skipped.append((name, getattr(exc, "message", None) or str(exc)))
            return None
        digest = hashlib.sha256(data).hexdigest()
        old = self.store.document(collection, name)
        if old is not None and old.sha256 == digest:
            report.unchanged += 1
            return None
        try:
            kind, blocks = load(path, data)
        except DocumentError as exc:
            report.skipped.append((name, exc.message.removeprefix(f"{path}: ")))
            return None
        return _Prepared(name, kind, digest, stat.st_size, stat.st_mtime, chunk_blocks(blocks),
                         old is not None)

    def _write(self, batch: list[_Prepared], collection: str, report: IngestReport) -> None:
        if not batch:
            return
        texts = [c.embed_text for p in batch for c in p.chunks]
        vectors = self.embedder.embed(texts)
        offset = 0
        for item in batch:
            mine = vectors[offset:offset + len(item.chunks)]
            offset += len(item.chunks)
            stored = self.store.replace_document(
                collection=collection, path=item.path, kind=item.kind, sha256=item.sha256,
                size=item.size, mtime=item.mtime, chunks=item.chunks, vectors=mine)
            if not stored:
                report.unchanged += 1
                continue
            (report.updated if item.existed else report.added).append(item.path)
            report.chunks += len(item.chunks)

    # reading ---------------------------------------------------------------------

    def documents(self, collection: str | None = None) -> list[DocumentRow]:
        """The indexed documents (``list`` is the same)."""
        return self.store.documents(collection)

    def stats(self) -> dict[str, Any]:
        counts = self.store.counts()
        size = sum(f.stat().st_size for f in self.path.parent.glob(self.path.name + "*")
                   if f.is_file())
        return {
            "path": str(self.path),
            "embedder": self.embedder.id,
            "dimensions": self.embedder.dim,
            "documents": sum(d for d, _ in counts.values()),
            "chunks": sum(c for _, c in counts.values()),
            "bytes": size,
            "collections": {name: {"documents": d, "chunks": c}
                            for name, (d, c) in counts.items()},
            "roots": [{"collection": c, "path": p} for c, p in self.store.roots()],
        }

    def search(self, query: str, *, k: int = 5, collection: str | None = None) -> list[Hit]:
        if not query.strip():
            raise UsageError("the search query is empty")
        if k < 1:
            raise UsageError("k must be at least 1")
        return hybrid_search(self.store, self.embedder, query, k=k, collection=collection)

    # answering -------------------------------------------------------------------

    def _prepare_ask(self, question: str, k: int, collection: str | None
                     ) -> tuple[list[Hit], list[dict[str, str]]]:
        hits = self.search(question, k=k, collection=collection)
        if not hits:
            raise UsageError("the index has nothing to answer from: add documents first "
                             "(localinfer index add PATH)")
        return hits, build_messages(question, hits)

    def _finish(self, question: str, response: ChatResponse, hits: list[Hit]) -> Answer:
        return finish(question, response, hits)

    def ask(self, question: str, *, k: int = 5, collection: str | None = None,
            client: SyncChat | Client | None = None, model: str | None = None,
            max_tokens: int = 512, temperature: float = 0.2) -> Answer:
        """Answer from the index through a local chat tier. Every sentence kept carries a
        citation checked against its chunk; with none, the best passages (extractive)."""
        hits, messages = self._prepare_ask(question, k, collection)
        own = client is None
        if client is None:
            from ..client import Client

            client = Client(answering_settings(self.settings, model)[0])
        try:
            response = client.chat(messages=messages, model=model, sensitive=True,
                                   max_tokens=max_tokens, temperature=temperature)
        except (NoBackend, SensitiveDataBlocked, ConsentRequired) as exc:
            raise NoBackend(f"{NO_LOCAL_TIER} ({exc.message})") from exc
        finally:
            if own:
                client.close()  # type: ignore[union-attr]
        if not isinstance(response, ChatResponse):
            raise TypeError("chat returned a stream; ask needs a whole answer")
        return self._finish(question, response, hits)

    async def aask(self, question: str, *, k: int = 5, collection: str | None = None,
                   client: AsyncChat | AsyncClient | None = None, model: str | None = None,
                   max_tokens: int = 512, temperature: float = 0.2) -> Answer:
        """``ask`` for async callers: retrieval runs in a worker thread."""
        hits, messages = await anyio.to_thread.run_sync(
            lambda: self._prepare_ask(question, k, collection))
        own = client is None
        if client is None:
            from ..client import AsyncClient

            client = AsyncClient(answering_settings(self.settings, model)[0])
        try:
            response = await client.chat(messages=messages, model=model, sensitive=True,
                                         max_tokens=max_tokens, temperature=temperature)
        except (NoBackend, SensitiveDataBlocked, ConsentRequired) as exc:
            raise NoBackend(f"{NO_LOCAL_TIER} ({exc.message})") from exc
        finally:
            if own:
                await client.aclose()  # type: ignore[union-attr]
        if not isinstance(response, ChatResponse):
            raise TypeError("chat returned a stream; ask needs a whole answer")
        return await anyio.to_thread.run_sync(lambda: self._finish(question, response, hits))

    # Last in the class body, so the name does not hide the builtin in annotations above.
    list = documents


def _recorded_server_model(path: Path) -> str | None:
    """The server model an existing index was built with, if any (a plain read: the
    meta table needs no extension)."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    value = str(row[0]) if row else ""
    return value.removeprefix(SERVER_PREFIX) if value.startswith(SERVER_PREFIX) else None


def _under(path: str, target: str) -> bool:
    return path == target or path.startswith(target.rstrip(os.sep) + os.sep)
