"""``langchain-openai`` (pinned in the test extra) against the gateway: ``ChatOpenAI``
(chat, stream with usage) and the legacy ``OpenAI`` LLM, which speaks /v1/completions."""

from __future__ import annotations

import pytest

from tests.fake_backend import FakeBackend, Script
from tests.support.lazy import LazyModule

langchain_openai = LazyModule("langchain_openai")


@pytest.mark.compat("langchain-openai", "chat", "scripted")
@pytest.mark.compat("langchain-openai", "stream", "scripted")
@pytest.mark.compat("langchain-openai", "max tokens", "scripted")
def test_chat_openai_invoke_and_stream(gateway: str, backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["Hi", " there"])).enqueue(Script(chunks=["a", "b"]))
    llm = langchain_openai.ChatOpenAI(base_url=gateway + "/v1", api_key="unused",
                                      model="fake-model", max_tokens=5, max_retries=0,
                                      timeout=60, stream_usage=True)
    assert llm.invoke("hello").content == "Hi there"
    pieces = list(llm.stream("count"))
    assert "".join(str(p.content) for p in pieces) == "ab"
    usage = [p.usage_metadata for p in pieces if p.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 2


@pytest.mark.compat("langchain-openai", "/v1/completions", "scripted")
def test_legacy_openai_llm_uses_completions(gateway: str,
                                            backends: list[FakeBackend]) -> None:
    backends[0].enqueue(Script(chunks=["def f():", " pass"]))
    llm = langchain_openai.OpenAI(base_url=gateway + "/v1", api_key="unused",
                                  model="fake-model", max_tokens=8, max_retries=0, timeout=60)
    assert llm.invoke("# a function\n") == "def f(): pass"
