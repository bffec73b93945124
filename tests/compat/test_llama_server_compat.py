"""The gateway in front of the real llama-server (local tier): ``include_usage`` comes
out as one final ``choices: []`` chunk whatever llama-server sends, and the legacy
completions route is served by the server."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from localinfer import AsyncClient, Settings
from localinfer.gateway import create_app
from tests.gateway_harness import RunApp

pytestmark = pytest.mark.integration


@pytest.mark.compat("openai", "stream", "llama-server")
@pytest.mark.compat("openai", "usage", "llama-server")
@pytest.mark.compat("openai", "/v1/completions", "llama-server")
def test_include_usage_and_completions_through_llama_server(
        run_app: RunApp, tmp_path: Path, llama_server: str) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, servers=[llama_server])
    url = run_app(create_app(settings, AsyncClient(settings), close_client=True))
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
    with client.chat.completions.with_streaming_response.create(
            model="default", messages=[{"role": "user", "content": "Say hi."}], max_tokens=6,
            temperature=0,
            stream=True, stream_options={"include_usage": True}) as response:
        assert response.headers["x-localinfer-tier"] == "local"
        chunks = list(response.parse())
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 6
    reply = client.completions.create(model="default", prompt="Hello", max_tokens=4,
                                      temperature=0)
    assert reply.choices[0].text and reply.usage and reply.usage.completion_tokens <= 4
