"""The MCP server: private documents, local models and the sandbox, for agent hosts.

Built on the official ``mcp`` Python SDK (FastMCP). Every tool result names the tier
that answered. Documents are always sensitive (never sent to a remote provider); ``chat``
is sensitive by default over MCP, so an agent host cannot send a user's data to a remote
provider unless the caller asks (``allow_remote``) *and* the user has granted consent in
localinfer itself (``localinfer consent grant``) — MCP has no channel to ask the user.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from mcp.server.fastmcp import FastMCP
from mcp.types import Resource as MCPResource
from mcp.types import ToolAnnotations

from .. import __version__
from ..errors import LocalInferError, UsageError
from ..settings import Settings
from ..types import ChatResponse

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..rag import Index
    from ..sandbox import Sandbox

T = TypeVar("T")

INSTRUCTIONS = (
    "localinfer: answers from models on this machine, search and question-answering over "
    "the user's locally indexed documents (never sent off the machine), and a WebAssembly "
    "sandbox for Python (no network, no host files). Every result names the tier that "
    "answered: 'local' (a server on this machine), 'embedded' (localinfer's own engine) or "
    "'remote' (only with the user's consent).")

COLLECTIONS_URI = "localinfer://collections"


class _Server(FastMCP):
    """FastMCP that also lists one resource per indexed collection."""

    collections: Callable[[], Any] | None = None

    async def list_resources(self) -> list[MCPResource]:
        listed = await super().list_resources()
        if self.collections is not None:
            try:
                names = await self.collections()
            except Exception:  # no index yet, or the rag extra is missing
                names = []
            listed += [MCPResource(uri=f"{COLLECTIONS_URI}/{name}",  # type: ignore[arg-type]
                                   name=f"collection {name}", mimeType="application/json",
                                   description=f"documents indexed in collection '{name}'")
                       for name in names]
        return listed


class LocalTools:
    """The objects the tools use, created lazily and closed once."""

    def __init__(self, settings: Settings, client: AsyncClient, *,
                 index: Index | None = None, sandbox: Sandbox | None = None) -> None:
        self.settings = settings
        self.client = client
        self._index = index
        self._sandbox = sandbox
        self._lock = anyio.Lock()  # one index operation at a time (one SQLite connection)

    def index(self) -> Index:
        if self._index is None:
            try:
                from ..rag import Index
            except ImportError as exc:
                raise UsageError("document tools need the rag extra: "
                                 "pip install 'localinfer[rag]'") from exc
            self._index = Index(self.settings)
        return self._index

    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            from ..sandbox import Sandbox

            self._sandbox = Sandbox(warm=1)
        return self._sandbox

    async def on_index(self, fn: Callable[[Index], T]) -> T:
        async with self._lock:
            index = self.index()
            return await anyio.to_thread.run_sync(fn, index)

    def retrieval_tier(self, index: Index) -> str:
        from ..rag.server_embedder import ServerEmbedder

        return "local" if isinstance(index.embedder, ServerEmbedder) else "embedded"

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        if self._sandbox is not None:
            self._sandbox.close()


def _fail(exc: LocalInferError) -> Exception:
    # FastMCP turns a raised exception into an MCP tool error (isError) with this text.
    return RuntimeError(exc.message)


def create_server(tools: LocalTools) -> FastMCP:
    """The MCP server over ``tools``; run it with ``run_stdio_async()``."""
    server = _Server("localinfer", instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    async def collection_names() -> list[str]:
        stats = await tools.on_index(lambda ix: ix.stats())
        return sorted(stats["collections"])

    server.collections = collection_names

    @server.tool(description="Search the user's locally indexed documents (hybrid vector + "
                 "keyword). Returns the best passages with file and line or page. Runs "
                 "entirely on this machine.", annotations=read_only)
    async def search_documents(query: str, collection: str | None = None,
                               k: int = 5) -> dict[str, Any]:
        try:
            def search(ix: Index) -> dict[str, Any]:
                hits = ix.search(query, k=k, collection=collection)
                return {"tier": tools.retrieval_tier(ix), "embedder": ix.embedder.id,
                        "hits": [{"location": h.location, **h.as_json()} for h in hits]}
            return await tools.on_index(search)
        except LocalInferError as exc:
            raise _fail(exc) from exc

    @server.tool(description="Answer a question from the user's locally indexed documents, "
                 "with numbered citations. Always answered by a local tier: the documents "
                 "never leave this machine.", annotations=read_only)
    async def ask_documents(question: str, collection: str | None = None, k: int = 5,
                            model: str | None = None, max_tokens: int = 512) -> dict[str, Any]:
        try:
            async with tools._lock:
                index = tools.index()
                answer = await index.aask(question, k=k, collection=collection,
                                          client=tools.client, model=model,
                                          max_tokens=max_tokens)
            return answer.as_json()
        except LocalInferError as exc:
            raise _fail(exc) from exc

    @server.tool(description="Ask a language model on this machine. Sensitive by default: "
                 "never sent to a remote provider. allow_remote=true lets localinfer use a "
                 "remote provider only if the user already granted it consent in localinfer.",
                 annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
    async def chat(prompt: str, model: str | None = None, system: str | None = None,
                   max_tokens: int | None = None, allow_remote: bool = False) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        try:
            reply = await tools.client.chat(prompt, model=model, system=system,
                                            sensitive=not allow_remote, **options)
        except LocalInferError as exc:
            raise _fail(exc) from exc
        assert isinstance(reply, ChatResponse)
        return {"text": reply.text, "model": reply.model, "backend": reply.backend,
                "tier": reply.tier,
                "finish_reason": reply.choices[0].finish_reason if reply.choices else None}

    @server.tool(description="Run Python 3.12 code in a WebAssembly sandbox on this machine: "
                 "standard library only, no network, no host files, 10 s and 256 MB at most. "
                 "'files' become text files in the working directory. Returns stdout, stderr, "
                 "the exit code and the files the code wrote.",
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False,
                                             openWorldHint=False))
    async def run_python(code: str, files: dict[str, str] | None = None,
                         timeout: float = 10.0) -> dict[str, Any]:
        try:
            result = await tools.sandbox().arun(code, files=files or {},
                                                timeout=min(max(timeout, 0.1), 60.0),
                                                memory="256M")
        except LocalInferError as exc:
            raise _fail(exc) from exc
        return {"tier": "local", "runtime": "python-3.12-wasi", "exit_code": result.exit_code,
                "error": result.error, "stdout": result.stdout.decode("utf-8", "replace"),
                "stderr": result.stderr.decode("utf-8", "replace"),
                "files": {name: data.decode("utf-8", "replace")
                          for name, data in result.files.items()},
                "truncated": result.truncated, "wall_seconds": round(result.wall_seconds, 4)}

    @server.tool(description="List the models available across tiers (local servers, the "
                 "embedded engine, remote providers the user configured).",
                 annotations=read_only)
    async def list_models() -> dict[str, Any]:
        models = await tools.client.models()
        return {"models": [{"id": m.id, "backend": m.backend, "tier": m.tier,
                            "capabilities": list(m.capabilities)} for m in models]}

    @server.resource(COLLECTIONS_URI, name="collections", mime_type="application/json",
                     description="The indexed document collections, with document and chunk "
                     "counts.")
    async def collections() -> str:
        stats = await tools.on_index(lambda ix: ix.stats())
        return json.dumps({"index": stats["path"], "embedder": stats["embedder"],
                           "collections": stats["collections"]})

    @server.resource(COLLECTIONS_URI + "/{name}", name="collection",
                     mime_type="application/json",
                     description="The documents indexed in one collection.")
    async def collection(name: str) -> str:
        docs = await tools.on_index(lambda ix: ix.documents(name))
        return json.dumps({"collection": name, "documents": [
            {"path": d.path, "size": d.size, "sha256": d.sha256, "indexed_at": d.indexed_at}
            for d in docs]})

    server._mcp_server.version = __version__
    return server


async def serve_stdio(settings: Settings | None = None) -> None:
    """Serve MCP over this process's stdin/stdout until the host closes stdin."""
    from ..client import AsyncClient

    settings = settings or Settings()
    async with AsyncClient(settings) as client:
        tools = LocalTools(settings, client)
        try:
            await create_server(tools).run_stdio_async()
        finally:
            tools.close()
