"""A local server that closes the connection mid-answer: an error everywhere, never a
quiet success (hardening §2)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localinfer.client import AsyncClient, Client
from localinfer.errors import BackendError, StreamTruncated
from localinfer.gateway import create_app
from localinfer.settings import Settings
from tests.hostile.truncating_server import MODEL, TruncatingServer
from tests.support.servers import RunApp

pytestmark = pytest.mark.hostile


@pytest.fixture
def cut() -> Iterator[TruncatingServer]:
    with TruncatingServer() as server:
        yield server


def settings(home: Path, cut: TruncatingServer) -> Settings:
    return Settings(home=home, scan_default_ports=False, servers=[cut.base_url],
                    embedded=False)


def test_library_stream_raises(tmp_path: Path, cut: TruncatingServer) -> None:
    with Client(settings(tmp_path, cut)) as client:
        stream = client.chat("hi", model=MODEL, stream=True)
        texts: list[str] = []
        with pytest.raises(StreamTruncated, match="end marker"):
            texts.extend(chunk.text for chunk in stream)
    assert "".join(texts) == "Hel"  # what did arrive was shown, then the error


async def test_library_non_streamed_says_what_happened(tmp_path: Path,
                                                       cut: TruncatingServer) -> None:
    async with AsyncClient(settings(tmp_path, cut)) as client:
        with pytest.raises(BackendError) as info:
            await client.chat("hi", model=MODEL)
    message = info.value.message
    assert "timed out" not in message
    assert "closed the connection" in message


def test_cli_exits_9(tmp_path: Path, cut: TruncatingServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    env.update(LOCALINFER_HOME=str(tmp_path), LOCALINFER_SCAN_DEFAULT_PORTS="off",
               LOCALINFER_SERVERS=cut.base_url, LOCALINFER_EMBEDDED="off")
    result = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "chat", "-m", MODEL,
                             "hi"], env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 9, result.stderr
    assert "Traceback" not in result.stderr
    assert "end marker" in result.stderr


def test_gateway_stream_ends_with_an_error_event(tmp_path: Path, cut: TruncatingServer,
                                                 run_app: RunApp) -> None:
    s = settings(tmp_path, cut)
    client = AsyncClient(s)
    base = run_app(create_app(s, client))
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(trust_env=False, timeout=60) as http, \
            http.stream("POST", base + "/v1/chat/completions", json=body) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert '"error"' in events[-2] and "end marker" in events[-2]
    ollama = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(trust_env=False, timeout=60) as http, \
            http.stream("POST", base + "/api/chat", json=ollama) as response:
        lines = [line for line in response.iter_lines() if line.strip()]
    assert '"error"' in lines[-1]
    assert '"done":true' not in lines[-1].replace(" ", "")
    asyncio.run(client.aclose())
