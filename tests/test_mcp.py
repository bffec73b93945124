"""`localinfer mcp` over stdio, driven by the official `mcp` client SDK: the tool list,
each tool called, resources, and errors as MCP tool errors (not crashes).

The server is a real subprocess. Its chat tier is a fake OpenAI-compatible server on
loopback (declared with LOCALINFER_SERVERS; the embedded engine is off, so answers are
deterministic); its index is the test corpus, built here with the real embedder.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")
if importlib.util.find_spec("onnxruntime") is None:  # not imported here: telemetry
    pytest.skip("the rag extra is not installed", allow_module_level=True)

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from localinfer.rag import Index, OnnxEmbedder
from localinfer.settings import Settings
from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.fakes.serve import AppServer
from tests.support import rag as support

rag_home = support.rag_home
embedder = support.embedder

pytestmark = pytest.mark.slow

TOOLS = {"search_documents", "ask_documents", "chat", "run_python", "list_models"}


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    server = AppServer(OpenAICompatibleFake().app).start()
    yield server.base_url
    server.stop()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, rag_home: Path,
            embedder: OnnxEmbedder) -> Path:
    path = tmp_path_factory.mktemp("mcp-index") / "index.db"
    settings = Settings(home=rag_home, index_path=path)
    with Index(settings, embedder=embedder) as index:
        index.add([support.CORPUS], collection="corpus")
    return path


def server_params(home: Path, index_path: Path, fake_url: str, **extra: str
                  ) -> StdioServerParameters:
    env = support.cli_env(home, index_path, LOCALINFER_SERVERS=fake_url,
                          LOCALINFER_EMBEDDED="false", **extra)
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "localinfer.cli.main", "mcp"], env=env)


@asynccontextmanager
async def session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


def structured(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content
    if result.structuredContent is not None:
        return dict(result.structuredContent)
    return dict(json.loads(result.content[0].text))


async def test_every_tool_over_stdio(rag_home: Path, indexed: Path, fake_server: str) -> None:
    async with session(server_params(rag_home, indexed, fake_server)) as s:
        listed = await s.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        for tool in listed.tools:
            assert tool.description and tool.inputSchema["type"] == "object"

        found = structured(await s.call_tool(
            "search_documents", {"query": "how often is the boiler serviced", "k": 3}))
        assert found["tier"] == "embedded"
        assert 1 <= len(found["hits"]) <= 3
        assert all(h["collection"] == "corpus" and h["location"] for h in found["hits"])

        answer = structured(await s.call_tool(
            "ask_documents", {"question": "When is the boiler serviced?", "k": 2}))
        assert answer["tier"] == "local"  # the declared loopback server: never remote
        assert answer["answer"].startswith("openai-fake")
        assert len(answer["sources"]) == 2

        chat = structured(await s.call_tool("chat", {"prompt": "say hi", "max_tokens": 8}))
        assert chat["tier"] == "local" and chat["text"] == "openai-fake: say hi"
        assert chat["backend"]

        ran = structured(await s.call_tool(
            "run_python", {"code": "import sys\nprint(open('n.txt').read() * 2, sys.platform)\n"
                                   "open('out.txt', 'w').write('made')",
                           "files": {"n.txt": "ab"}}))
        assert ran["tier"] == "local" and ran["exit_code"] == 0 and ran["error"] is None
        assert ran["stdout"] == "abab wasi\n" and ran["files"] == {"out.txt": "made"}

        models = structured(await s.call_tool("list_models", {}))
        ids = {(m["id"], m["tier"]) for m in models["models"]}
        assert ("local-chat", "local") in ids

        resources = await s.list_resources()
        uris = {str(r.uri) for r in resources.resources}
        assert {"localinfer://collections", "localinfer://collections/corpus"} <= uris
        read = await s.read_resource("localinfer://collections")  # type: ignore[arg-type]
        collections = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert collections["collections"]["corpus"]["documents"] == len(
            list(support.CORPUS.iterdir()))
        read = await s.read_resource("localinfer://collections/corpus")  # type: ignore[arg-type]
        docs = json.loads(read.contents[0].text)["documents"]  # type: ignore[union-attr]
        assert {Path(d["path"]).name for d in docs} == {p.name for p in support.CORPUS.iterdir()}


async def test_errors_are_tool_errors_not_crashes(rag_home: Path, indexed: Path,
                                                  fake_server: str) -> None:
    async with session(server_params(rag_home, indexed, fake_server)) as s:
        empty = await s.call_tool("search_documents", {"query": "   "})
        assert empty.isError and "empty" in empty.content[0].text  # type: ignore[union-attr]
        unknown = await s.call_tool("chat", {"prompt": "hi", "model": "no-such-model"})
        assert unknown.isError and "not found" in unknown.content[0].text  # type: ignore[union-attr]
        nosuch = await s.call_tool("no_such_tool", {})
        assert nosuch.isError
        # A guest that hits a limit is a normal result that says so.
        looped = structured(await s.call_tool("run_python",
                                              {"code": "while True: pass", "timeout": 1}))
        assert looped["error"] == "timeout" and looped["exit_code"] is None
        # The server is still there.
        assert structured(await s.call_tool("run_python", {"code": "print(1)"}))["stdout"] == "1\n"


async def test_chat_is_sensitive_by_default(rag_home: Path, indexed: Path) -> None:
    # No local chat tier, a remote provider configured: chat refuses to send it there,
    # and even with allow_remote it goes nowhere without the user's consent in localinfer.
    remotes = json.dumps({"testprov": {"base_url": "https://api.example.invalid/v1",
                                       "key_env": "NO_SUCH_KEY", "models": ["gpt-test"]}})
    params = server_params(rag_home, indexed, "http://127.0.0.1:9", LOCALINFER_REMOTES=remotes)
    async with session(params) as s:
        refused = await s.call_tool("chat", {"prompt": "my diagnosis", "model": "gpt-test"})
        assert refused.isError
        assert "never goes remote" in refused.content[0].text  # type: ignore[union-attr]
        consent = await s.call_tool("chat", {"prompt": "my diagnosis", "model": "gpt-test",
                                             "allow_remote": True})
        assert consent.isError
        assert "consent" in consent.content[0].text  # type: ignore[union-attr]
